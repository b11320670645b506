// A bounded free list of memory blocks of one size, and a standard allocator over it, for objects
// created and destroyed once per request (std::allocate_shared): the block of a finished object
// is handed to the next one instead of going back to malloc. Blocks of another size than the
// first one requested are not kept. Not thread-safe: one per thread or strand.
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <vector>

namespace hopgate::core {

class BlockRecycler {
public:
    // Keeps at most `max_kept` free blocks.
    explicit BlockRecycler(std::size_t max_kept) : max_(max_kept) { free_.reserve(max_kept); }
    ~BlockRecycler() {
        for (void* p : free_) {
            ::operator delete(p);
        }
    }
    BlockRecycler(const BlockRecycler&) = delete;
    BlockRecycler& operator=(const BlockRecycler&) = delete;

    void* allocate(std::size_t n) {
        if (size_ == 0) {
            size_ = n;
        }
        if (n == size_ && !free_.empty()) {
            void* p = free_.back();
            free_.pop_back();
            return p;
        }
        return ::operator new(n);
    }
    void deallocate(void* p, std::size_t n) noexcept {
        if (n == size_ && free_.size() < max_) {
            free_.push_back(p);  // never reallocates: reserved up to max_
            return;
        }
        ::operator delete(p);
    }
    std::size_t kept() const { return free_.size(); }

private:
    std::size_t max_;
    std::size_t size_ = 0;  // the recycled block size: that of the first allocation
    std::vector<void*> free_;
};

// Allocator over a shared BlockRecycler (each copy, rebound ones included, keeps it alive, so it
// outlives every block it handed out).
template <class T>
struct RecyclingAllocator {
    using value_type = T;
    static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__);

    explicit RecyclingAllocator(std::shared_ptr<BlockRecycler> r) : recycler(std::move(r)) {}
    template <class U>
    RecyclingAllocator(const RecyclingAllocator<U>& o) : recycler(o.recycler) {}

    T* allocate(std::size_t n) { return static_cast<T*>(recycler->allocate(n * sizeof(T))); }
    void deallocate(T* p, std::size_t n) noexcept { recycler->deallocate(p, n * sizeof(T)); }

    template <class U>
    bool operator==(const RecyclingAllocator<U>& o) const {
        return recycler == o.recycler;
    }

    std::shared_ptr<BlockRecycler> recycler;
};

}  // namespace hopgate::core
