// The device seam on a GPU: the elementwise functors and the Philox stream give
// the same values in a CUDA kernel as on the CPU (the CPU loop is the spec).
// Compiled by nvcc only; skips cleanly when no GPU is present.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <vector>

#include "avgrad/ops/unary.hpp"

using namespace avgrad;

namespace {

bool have_gpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

template <class F> __global__ void forward_kernel(const float* x, float* y, float* dx, int n, F f) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    y[i] = f(x[i]);
    dx[i] = f.grad(x[i], y[i], 1.0f);
  }
}

__global__ void philox_kernel(std::uint64_t key, std::uint64_t offset, float* u, float* z, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    u[i] = philox_uniform<float>(key, offset, i);
    z[i] = philox_normal<float>(key, offset, i);
  }
}

struct DeviceBuffer {
  float* p = nullptr;
  explicit DeviceBuffer(int n) { EXPECT_EQ(cudaMalloc(&p, sizeof(float) * n), cudaSuccess); }
  ~DeviceBuffer() { cudaFree(p); }
  std::vector<float> host(int n) const {
    std::vector<float> h(n);
    cudaMemcpy(h.data(), p, sizeof(float) * n, cudaMemcpyDeviceToHost);
    return h;
  }
};

template <class F> void check_functor(F f, const char* name) {
  const int n = 1000;
  Generator g(3);
  auto x = randn<float>({n}, g, 0.0, 3.0);
  DeviceBuffer dx_in(n), dy(n), ddx(n);
  cudaMemcpy(dx_in.p, x.data(), sizeof(float) * n, cudaMemcpyHostToDevice);
  forward_kernel<<<(n + 255) / 256, 256>>>(dx_in.p, dy.p, ddx.p, n, f);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  auto y = dy.host(n), d = ddx.host(n);
  for (int i = 0; i < n; ++i) {
    float xi = x.data()[i], yr = f(xi), dr = f.grad(xi, yr, 1.0f);
    ASSERT_NEAR(y[i], yr, 1e-6f + 1e-5f * std::abs(yr)) << name << " forward at x=" << xi;
    ASSERT_NEAR(d[i], dr, 1e-6f + 1e-5f * std::abs(dr)) << name << " derivative at x=" << xi;
  }
}

TEST(CudaSeam, ElementwiseFunctorsMatchCpu) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device present";
  check_functor(fn::Exp{}, "exp");
  check_functor(fn::Tanh{}, "tanh");
  check_functor(fn::Sigmoid{}, "sigmoid");
  check_functor(fn::GeluErf{}, "gelu");
  check_functor(fn::GeluTanh{}, "gelu_tanh");
  check_functor(fn::Silu{}, "silu");
  check_functor(fn::Softplus{1.0, 20.0}, "softplus");
  check_functor(fn::Elu{1.0}, "elu");
}

TEST(CudaSeam, PhiloxStreamMatchesCpu) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device present";
  const int n = 4096;
  Generator g(99);
  g.advance(17);  // a non-zero offset
  Generator h = g;
  auto u = rand<float>({n}, g);
  auto z = randn<float>({n}, g);
  DeviceBuffer du(n), dz(n);
  philox_kernel<<<(n + 255) / 256, 256>>>(h.seed(), h.offset(), du.p, dz.p, n);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  auto ug = du.host(n);
  for (int i = 0; i < n; ++i) ASSERT_EQ(ug[i], u.data()[i]) << "uniform " << i;
  // normals: the second draw started at offset + n on the CPU
  philox_kernel<<<(n + 255) / 256, 256>>>(h.seed(), h.offset() + n, du.p, dz.p, n);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  auto zg = dz.host(n);
  for (int i = 0; i < n; ++i) ASSERT_NEAR(zg[i], z.data()[i], 1e-5f) << "normal " << i;
}

}  // namespace
