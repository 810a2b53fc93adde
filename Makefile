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

lint:
	clang-format --dry-run --Werror lib/*.c lib/*.h cmd/*.c tests/unit/*.c
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
		--inline-suppr -Ilib lib cmd

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

uninstall:
	for c in $(CMDS); do rm -f $(DESTDIR)$(PREFIX)/bin/$${c#bin/}; done

clean:
	rm -rf build bin

FORCE:
.PHONY: all deps check demo lint install uninstall clean FORCE
-include $(wildcard build/lib/*.d build/cmd/*.d)
