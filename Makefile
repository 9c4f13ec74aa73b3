# kiln: `make run` (install, build, run the main job) and `make test` (install, build, test).
BUILD ?= build
BUILD_SAN ?= build-sanitize
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build run test test-sanitize bench fuzz clean

all: build

deps:
	./scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

# The main job: train the Fashion-MNIST CNN on the best device present (kiln train --help).
run: build
	$(BUILD)/tools/kiln info
	OMP_WAIT_POLICY=passive $(BUILD)/tools/kiln train
	$(BUILD)/tools/kiln predict --model runs/latest/model.safetensors --index 0

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# The suite again under AddressSanitizer and UndefinedBehaviorSanitizer (CPU only).
test-sanitize: deps
	cmake -S . -B $(BUILD_SAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKILN_WITH_CUDA=OFF -DKILN_BUILD_BENCH=OFF \
	  -DKILN_SANITIZE=address,undefined -DCMAKE_CXX_FLAGS="-O1 -fno-sanitize-recover=undefined"
	cmake --build $(BUILD_SAN) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1 ctest --test-dir $(BUILD_SAN) --output-on-failure -j $(JOBS)

# The fuzz harnesses (tests/fuzz) under ASan+UBSan with clang's libFuzzer, FUZZ_SECONDS each.
FUZZ_SECONDS ?= 60
fuzz:
	./scripts/install-deps.sh --ci
	FUZZ_SECONDS=$(FUZZ_SECONDS) ./scripts/ci-fuzz.sh

bench: build
	$(BUILD)/tools/kiln bench

clean:
	rm -rf $(BUILD) $(BUILD_SAN)
