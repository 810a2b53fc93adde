# flkit version and build configuration
VERSION = 0.1.0

PREFIX = /usr/local
MANPREFIX = $(PREFIX)/share/man
BASHCOMPDIR = $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR = $(PREFIX)/share/zsh/vendor-completions

PKGS = libwebsockets msgpack zlib libdeflate
# libcurl: its headers at build time; the library is dlopen'ed by
# lib/curl_load.c when the first client starts, so that a program that
# talks to no worker does not map it and its thirty libraries (~3.6 ms).
CURLPKG = libcurl
CURLLIB = libcurl.so.4
# OpenBLAS: its cblas.h at build time; the library itself is dlopen'ed by
# lib/blas.c when the first network is built, so that a program that
# trains nothing does not map it and start its threads (~5 ms a start).
BLASPKG = openblas
BLASLIB = libopenblas.so.0

CC ?= cc
OPT = -O2 -g -fno-math-errno
WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes $(WERROR)
CPPFLAGS += -D_GNU_SOURCE -DFL_VERSION=\"$(VERSION)\" -DFL_BLAS_LIB=\"$(BLASLIB)\" -DFL_CURL_LIB=\"$(CURLLIB)\" -Ilib
CFLAGS += -std=c11 $(OPT) $(WARN) -pthread $(shell pkg-config --cflags $(PKGS) $(CURLPKG) $(BLASPKG) 2>/dev/null)
# --as-needed: a program links only the libraries it calls.
LDFLAGS += -Wl,--as-needed
LDLIBS += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -pthread
