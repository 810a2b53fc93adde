# flkit version and build configuration
VERSION = 0.1.0

PREFIX = /usr/local
MANPREFIX = $(PREFIX)/share/man
BASHCOMPDIR = $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR = $(PREFIX)/share/zsh/vendor-completions

PKGS = libcurl libwebsockets msgpack zlib libdeflate openblas

CC ?= cc
OPT = -O2 -g -fno-math-errno
WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes $(WERROR)
CPPFLAGS += -D_GNU_SOURCE -DFL_VERSION=\"$(VERSION)\" -Ilib
CFLAGS += -std=c11 $(OPT) $(WARN) -pthread $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# --as-needed: a program links only the libraries it calls; fl-avg then
# carries no OpenBLAS, whose start-up threads spin for 0.1 s.
LDFLAGS += -Wl,--as-needed
LDLIBS += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -pthread
