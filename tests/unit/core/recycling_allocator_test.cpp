// BlockRecycler / RecyclingAllocator: blocks of finished objects are reused up to the bound, and
// objects made with allocate_shared are constructed and destroyed normally.
#include "core/recycling_allocator.hpp"

#include <gtest/gtest.h>

#include <string>

namespace hopgate::core {
namespace {

TEST(BlockRecycler, ReusesFreedBlocksUpToTheBound) {
    BlockRecycler r(2);
    void* a = r.allocate(64);
    void* b = r.allocate(64);
    void* c = r.allocate(64);
    r.deallocate(a, 64);
    r.deallocate(b, 64);
    r.deallocate(c, 64);  // over the bound: freed
    EXPECT_EQ(r.kept(), 2u);
    void* d = r.allocate(64);
    EXPECT_TRUE(d == a || d == b);
    void* other = r.allocate(32);  // another size is never taken from, nor kept in, the list
    EXPECT_EQ(r.kept(), 1u);
    r.deallocate(other, 32);
    EXPECT_EQ(r.kept(), 1u);
    r.deallocate(d, 64);
    EXPECT_EQ(r.kept(), 2u);
}

TEST(RecyclingAllocator, AllocateSharedReusesTheControlBlock) {
    auto r = std::make_shared<BlockRecycler>(4);
    RecyclingAllocator<std::string> alloc(r);
    const std::string* first = nullptr;
    {
        auto p = std::allocate_shared<std::string>(alloc, 100, 'x');
        first = p.get();
        EXPECT_EQ(p->size(), 100u);
    }
    EXPECT_EQ(r->kept(), 1u);
    auto q = std::allocate_shared<std::string>(alloc, "again");
    EXPECT_EQ(q.get(), first);
    EXPECT_EQ(*q, "again");
    EXPECT_EQ(r->kept(), 0u);
    std::weak_ptr<std::string> w = q;
    r.reset();  // the allocator copy in q's control block keeps the recycler alive
    q.reset();
    EXPECT_TRUE(w.expired());
}

}  // namespace
}  // namespace hopgate::core
