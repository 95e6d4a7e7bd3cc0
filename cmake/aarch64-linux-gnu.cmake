# Cross build for 64-bit ARM (NEON): Debian's g++-aarch64-linux-gnu; tests run under qemu.
# The arm64 libraries come from Debian multiarch (scripts/setup with AFQ_SETUP_EXTRA=1 installs
# libhwy-dev:arm64, libgtest-dev:arm64, libgmock-dev:arm64, libfmt-dev:arm64).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
# No -L /usr/aarch64-linux-gnu (nor QEMU_LD_PREFIX): the binaries run on the multiarch runtime that
# libhwy1:arm64 pulls in (/lib/ld-linux-aarch64.so.1, libc6:arm64). With -L, qemu loads the cross
# toolchain's ld.so but finds libc.so.6 in /lib/aarch64-linux-gnu, a different glibc build, and
# the first test that starts the thread pool spins forever.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static)
# pkg-config still answers for the host, so PCRE2 (afq_text: tokenizers, the afq command) resolves
# to the amd64 library and those targets do not link for ARM; the kernels, format, I/O and model
# tests need none of it.
