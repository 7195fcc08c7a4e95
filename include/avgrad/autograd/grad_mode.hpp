// Grad mode: whether ops record onto the tape. Thread-local, like PyTorch, so a
// data-loader thread never records and an attack's no-grad update stays local.
#pragma once

namespace avgrad {

namespace detail {
inline bool& grad_mode_flag() {
  thread_local bool enabled = true;
  return enabled;
}
}  // namespace detail

/// True when ops record backward nodes on this thread.
inline bool grad_enabled() { return detail::grad_mode_flag(); }
inline void set_grad_enabled(bool on) { detail::grad_mode_flag() = on; }

/// RAII: no recording within the scope (optimizer steps, attack updates, eval).
class NoGradGuard {
 public:
  NoGradGuard() : prev_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

/// RAII: recording on within the scope (e.g. an attack inside an eval loop).
class EnableGradGuard {
 public:
  EnableGradGuard() : prev_(grad_enabled()) { set_grad_enabled(true); }
  ~EnableGradGuard() { set_grad_enabled(prev_); }
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace avgrad
