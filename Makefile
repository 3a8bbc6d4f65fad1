# kagi: one Makefile. `make` builds build/libkagi.a and build/kagi.
#   make test    whole test suite        make asan   same under ASan+UBSan
#   make bench   benchmarks (bench/)     make example  built-in example
CC      ?= cc
BUILD   ?= build
# x86-64-v3 (AVX2, BMI2, POPCNT) plus PCLMUL: every server CPU of the last
# decade has them; override ARCH= for other machines.
ARCH    ?= -march=x86-64-v3 -mpclmul
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
# Flags kagi needs whatever CFLAGS the caller sets (make asan sets its own).
KFLAGS  := -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror \
           -Wshadow -Wstrict-prototypes -Wvla $(ARCH) -pthread -Iinclude -Isrc/core
# KME daemon (src/kms, src/net): JSON, the key store, TLS.
LDLIBS  += $(shell pkg-config --libs jansson sqlite3 openssl)
LDLIBS  += -lyaml -lcrypto -lpthread -lm
# libgf2x only for bench_amplify's comparison row (docs/amplify.md).
BENCH_LIBS := -lgf2x

LIB_SRC   := $(wildcard src/core/*.c src/phys/*.c src/orbit/*.c src/distill/*.c src/sim/*.c src/kms/*.c src/net/*.c src/web/*.c)
CLI_SRC   := $(wildcard src/cli/*.c)
TEST_SRC  := $(wildcard tests/test_*.c)
BENCH_SRC := $(wildcard bench/bench_*.c)

LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ   := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TESTS     := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCHES   := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all test asan bench example clean deps fuzz
all: $(BUILD)/libkagi.a $(BUILD)/kagi

$(BUILD)/obj/%.o: %.c $(wildcard include/kagi/*.h src/*/*.h) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(KFLAGS) -c $< -o $@

$(BUILD)/libkagi.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/kagi: $(CLI_OBJ) $(BUILD)/libkagi.a
	$(CC) $(CFLAGS) $(KFLAGS) $(LDFLAGS) $(CLI_OBJ) $(BUILD)/libkagi.a $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/%.c tests/t.h $(BUILD)/libkagi.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(KFLAGS) $(LDFLAGS) -Itests $< $(BUILD)/libkagi.a $(LDLIBS) -o $@

$(BUILD)/bench/%: bench/%.c $(BUILD)/libkagi.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(KFLAGS) $(LDFLAGS) $< $(BUILD)/libkagi.a $(LDLIBS) $(BENCH_LIBS) -o $@

test: all $(TESTS)
	@BUILD=$(BUILD) tests/run.sh $(TESTS)

# Sanitizer build in its own folder; -O1 keeps it quick enough for the suite.
asan:
	$(MAKE) BUILD=build-asan OPT=-O1 \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  LDFLAGS="-fsanitize=address,undefined" test

bench: all $(BENCHES)
	@for b in $(BENCHES); do echo "== $$b"; $$b || exit 1; done

example: all
	@examples/run-example.sh $(BUILD)/kagi

# libFuzzer harnesses (fuzz/, docs/kme.md): clang, the KME's parsers built
# with coverage and ASan+UBSan; `make fuzz FUZZ_SECONDS=N` runs each N s.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SRC     := src/core/error.c src/core/bits.c src/core/afile.c src/distill/estimate.c src/phys/keyrate.c src/net/http.c src/net/etsi014.c src/net/peer.c src/distill/auth.c \
                src/net/config.c src/kms/store.c src/kms/idmap.c src/kms/log.c src/kms/files.c
FUZZERS      := $(patsubst fuzz/%.c,build-fuzz/%,$(wildcard fuzz/fuzz_*.c))
build-fuzz/fuzz_%: fuzz/fuzz_%.c $(FUZZ_SRC) $(wildcard include/kagi/*.h src/*/*.h) Makefile
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -g -O1 -std=c11 -D_POSIX_C_SOURCE=200809L $(ARCH) -pthread -Iinclude -Isrc/core \
	  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined $< $(FUZZ_SRC) $(LDLIBS) -o $@
fuzz: $(FUZZERS)
	@for f in $(FUZZERS); do n=$${f#build-fuzz/fuzz_}; c=$$(mktemp -d); \
	  d=$$([ -f fuzz/$$n.dict ] && echo -dict=fuzz/$$n.dict); echo "== $$f, $(FUZZ_SECONDS) s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -max_len=4096 $$d $$c fuzz/corpus/$$n || { rm -rf $$c; exit 1; }; \
	  rm -rf $$c; done

deps:
	@scripts/deps.sh

clean:
	rm -rf build build-asan build-fuzz
