# HopGate developer entry points. `make test` and `make demo` work on a fresh Debian 12 machine.
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
JOBS       ?= $(shell nproc)
CMAKE_GEN  := -G Ninja

.PHONY: all deps build test test-asan fuzz fuzz-smoke bench demo demo-sim format clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

# Install dependencies, build, run every test.
test: deps build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) --timeout 1200

# Unit, simulation and loopback integration tests under AddressSanitizer + UBSan (sanitized runs
# use smaller transfers: HG_SANITIZED=1).
$(BUILD_ASAN)/build.ninja:
	cmake -S . -B $(BUILD_ASAN) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DHG_SANITIZE=ON \
	  -DHG_BUILD_BENCH=OFF

test-asan: deps $(BUILD_ASAN)/build.ninja
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	HG_SANITIZED=1 ctest --test-dir $(BUILD_ASAN) --output-on-failure -j $(JOBS) -L 'unit|sim|integration' --timeout 1800

# libFuzzer targets (clang); `fuzz-smoke` runs each for a short, bounded time on its corpus.
$(BUILD_FUZZ)/build.ninja:
	CXX=clang++ cmake -S . -B $(BUILD_FUZZ) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DHG_BUILD_FUZZ=ON -DHG_BUILD_TESTS=OFF -DHG_BUILD_BENCH=OFF -DHG_BUILD_APPS=OFF

fuzz: deps $(BUILD_FUZZ)/build.ninja
	cmake --build $(BUILD_FUZZ) -j $(JOBS) --target fuzz_all

fuzz-smoke: fuzz
	scripts/fuzz-smoke.sh $(BUILD_FUZZ) 20

bench: deps build
	scripts/bench.sh $(BUILD)

# The real gateway on this machine: server, client, a local service; prints the curl command.
demo: deps build
	scripts/demo.sh $(BUILD)

# The tunnel core on the deterministic simulated network under loss, delay and reordering.
demo-sim: deps build
	scripts/demo-sim.sh $(BUILD)

format:
	find src tests apps bench fuzz -name '*.[ch]pp' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)
