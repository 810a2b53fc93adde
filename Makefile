# flkit: one flat Makefile (see config.mk for flags and paths)
include config.mk

ifdef SANITIZE
CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
endif

LIBSRC = $(sort $(wildcard lib/*.c))
LIBOBJ = $(LIBSRC:lib/%.c=build/lib/%.o)
LIB = build/libflkit.a
CMDS = $(patsubst cmd/%.c,bin/%,$(sort $(wildcard cmd/fl-*.c)))
CMDCOMMON = cmd/common.c
CMDCOMMONOBJ = $(CMDCOMMON:cmd/%.c=build/cmd/%.o)
UNITS = $(patsubst tests/unit/%.c,build/tests/%,$(sort $(wildcard tests/unit/test_*.c)))
MAN1 = $(wildcard man/*.1)
MAN5 = $(wildcard man/*.5)
MAN8 = $(wildcard man/*.8)

all: $(CMDS) $(UNITS)

# Rebuild everything when the flags change (a SANITIZE build, say).
build/flags: FORCE
	@mkdir -p build
	@echo '$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $(LDLIBS)' | cmp -s - $@ || \
		echo '$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $(LDLIBS)' > $@

build/lib/%.o: lib/%.c build/flags
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

build/cmd/%.o: cmd/%.c build/flags
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(LIB): $(LIBOBJ)
	rm -f $@
	$(AR) rcs $@ $(LIBOBJ)

# A program is cmd/fl-NAME.c plus any cmd/NAME_*.c parts, over common.c.
.SECONDEXPANSION:
bin/fl-%: build/cmd/fl-%.o $$(subst .c,.o,$$(addprefix build/,$$(wildcard cmd/$$*_*.c))) $(CMDCOMMONOBJ) $(LIB)
	@mkdir -p bin
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIB) $(LDLIBS)

build/tests/%: tests/unit/%.c tests/unit/unit.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

deps:
	@share/install-deps check

check: deps
	@$(MAKE) --no-print-directory all
	@tests/run $(UNITS)

demo: 
	@share/install-deps demo
	@$(MAKE) --no-print-directory all
	@share/demo/run

# compile_commands.json for clang-tidy (and editors): the real flags, with
# pkg-config's include paths, of every C file the build compiles.
LINTSRC = $(LIBSRC) $(sort $(wildcard cmd/*.c)) $(sort $(wildcard tests/unit/*.c))
JSONQ = $(subst ",\",$(subst \,\\,$(1)))
build/compile_commands.json: build/flags $(LINTSRC)
	@mkdir -p build
	@sep=; { echo '['; for f in $(LINTSRC); do \
		printf '%s{"directory": "%s", "file": "%s",\n "command": "%s -c %s"}\n' \
			"$$sep" '$(CURDIR)' "$$f" '$(call JSONQ,$(CC) $(CPPFLAGS) $(CFLAGS))' "$$f"; \
		sep=,; done; echo ']'; } >$@

# lint (in CI): clang-tidy with the checks of .clang-tidy over the real
# flags, and cppcheck; both must be silent. Each suppression is inline
# (NOLINT, cppcheck-suppress) with the reason beside it. cppcheck 2.10 does
# not read C11 _Noreturn, hence the -D. Formatting is not linted: the tree
# is not clang-format clean and a mass reformat would collide with all work
# in progress; `make format-check` reports it and is not part of CI.
LINTJOBS = 2
lint: build/compile_commands.json
	@share/install-deps lint
	@echo "== clang-tidy"
	@{ printf '%s\n' $(LIBSRC) $(sort $(wildcard cmd/*.c)) | \
		xargs -P$(LINTJOBS) -n1 clang-tidy -p build --quiet || \
		echo "clang-tidy failed"; } 2>&1 | { ! grep -v 'warnings* generated\.$$'; }
	@echo "== cppcheck"
	@cppcheck --quiet --error-exitcode=1 --inline-suppr \
		--enable=warning,portability,performance --std=c11 -D_GNU_SOURCE \
		'-D_Noreturn=__attribute__((noreturn))' -Ilib -Icmd lib cmd

format-check:
	clang-format --dry-run --Werror lib/*.c lib/*.h cmd/*.c tests/unit/*.c

install: all
	mkdir -p $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(MANPREFIX)/man1 \
		$(DESTDIR)$(MANPREFIX)/man5 $(DESTDIR)$(MANPREFIX)/man8 \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR)
	cp -f $(CMDS) $(DESTDIR)$(PREFIX)/bin/
	$(if $(MAN1),cp -f $(MAN1) $(DESTDIR)$(MANPREFIX)/man1/)
	$(if $(MAN5),cp -f $(MAN5) $(DESTDIR)$(MANPREFIX)/man5/)
	$(if $(MAN8),cp -f $(MAN8) $(DESTDIR)$(MANPREFIX)/man8/)
	for f in completions/*.bash; do \
		cp -f $$f $(DESTDIR)$(BASHCOMPDIR)/$$(basename $$f .bash); done
	cp -f completions/_* $(DESTDIR)$(ZSHCOMPDIR)/
	mkdir -p $(DESTDIR)$(PREFIX)/share/flkit/examples $(DESTDIR)$(PREFIX)/share/flkit/lib
	cp -f share/examples/* $(DESTDIR)$(PREFIX)/share/flkit/examples/
	cp -f share/lib/workers.sh $(DESTDIR)$(PREFIX)/share/flkit/lib/

uninstall:
	for c in $(CMDS); do rm -f $(DESTDIR)$(PREFIX)/bin/$${c#bin/}; done
	rm -rf $(DESTDIR)$(PREFIX)/share/flkit

clean:
	rm -rf build bin

# fuzz: libFuzzer targets tests/fuzz/fuzz_NAME.c over the parsers built with
# clang and sanitizers (in build/fuzz/, apart from the main build), each run
# FUZZ_SECONDS from its seeds in tests/fuzz/corpus/NAME/; a crash fails.
FUZZ_SECONDS = 60
FUZZCC = clang
FUZZFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
FUZZLIB = build/fuzz/libflkit.a
FUZZERS = $(patsubst tests/fuzz/%.c,build/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))

build/fuzz/lib/%.o: lib/%.c
	@mkdir -p $(@D)
	$(FUZZCC) $(CPPFLAGS) $(CFLAGS) $(FUZZFLAGS) -fsanitize=fuzzer-no-link \
		-MMD -MP -c -o $@ $<

$(FUZZLIB): $(LIBSRC:lib/%.c=build/fuzz/lib/%.o)
	rm -f $@
	$(AR) rcs $@ $^

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZLIB)
	$(FUZZCC) $(CPPFLAGS) $(CFLAGS) $(FUZZFLAGS) -fsanitize=fuzzer -o $@ $< \
		$(FUZZLIB) $(LDLIBS)

fuzz:
	@share/install-deps fuzz
	@$(MAKE) --no-print-directory fuzz-run

fuzz-run: $(FUZZERS)
	@for f in $(FUZZERS); do \
		t=$${f#build/fuzz/fuzz_}; \
		mkdir -p build/fuzz/corpus/$$t build/fuzz/crash; \
		echo "== fuzz $$t: $(FUZZ_SECONDS) s"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
			-artifact_prefix=build/fuzz/crash/$$t- \
			build/fuzz/corpus/$$t tests/fuzz/corpus/$$t 2>build/fuzz/$$t.log || \
			{ tail -60 build/fuzz/$$t.log; exit 1; }; \
		grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' \
			build/fuzz/$$t.log; \
	done

# The replayer of the corpora in make check includes the targets.
build/tests/test_fuzz_corpus: $(wildcard tests/fuzz/*.[ch])

FORCE:
.PHONY: all deps check demo lint format-check install uninstall clean fuzz fuzz-run FORCE
-include $(wildcard build/lib/*.d build/cmd/*.d build/fuzz/lib/*.d)
