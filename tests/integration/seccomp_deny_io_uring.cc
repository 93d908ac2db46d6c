// Test launcher: installs a seccomp filter that answers io_uring_setup, io_uring_enter and
// io_uring_register with EPERM and allows everything else, exactly as the default profiles of
// Docker 25+ and containerd 2.0 treat them, then execs a program under it (the filter is
// inherited across exec and fork).
//
//   seccomp_deny_io_uring PROGRAM [ARGS...]
//   SYNQ_SECCOMP_EXEC=PROGRAM seccomp_deny_io_uring [ARGS...]   (a drop-in for $SYNQ_AGENT)
#include <seccomp.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

int Fail(const char* what, int err) {
  std::fprintf(stderr, "seccomp_deny_io_uring: %s: %s\n", what, std::strerror(err));
  return 127;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args;
  const char* target = std::getenv("SYNQ_SECCOMP_EXEC");
  if (target != nullptr && *target != '\0') {
    args.push_back(const_cast<char*>(target));
    for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  } else {
    if (argc < 2) {
      std::fprintf(stderr, "usage: seccomp_deny_io_uring PROGRAM [ARGS...]\n");
      return 2;
    }
    for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  }
  args.push_back(nullptr);

  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == nullptr) return Fail("seccomp_init", ENOMEM);
  for (const char* name : {"io_uring_setup", "io_uring_enter", "io_uring_register"}) {
    const int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) return Fail(name, ENOSYS);
    if (const int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0); rc < 0) {
      return Fail("seccomp_rule_add", -rc);
    }
  }
  if (const int rc = seccomp_load(ctx); rc < 0) return Fail("seccomp_load", -rc);
  seccomp_release(ctx);
  execv(args[0], args.data());
  return Fail(args[0], errno);
}
