#ifndef EVONAS_WORKER_MODEL_TENSORS_H_
#define EVONAS_WORKER_MODEL_TENSORS_H_

// Tensor helpers the MLP and convolutional trainers share. Only those two
// files include it: they include LibTorch anyway.

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace evonas::model {

// A tensor's values, copied as float64.
inline std::vector<double> Values(const torch::Tensor& t) {
  torch::Tensor c = t.detach().to(torch::kFloat64).contiguous();
  const double* p = c.data_ptr<double>();
  return std::vector<double>(p, p + c.numel());
}

// `n` values uniform in [-bound, bound] from `gen`; zeros, drawing nothing,
// when `bound` is 0 (initialisation.h's zero biases).
inline std::vector<double> Uniform(int64_t n, double bound,
                                   at::Generator& gen) {
  if (bound == 0) return std::vector<double>(static_cast<size_t>(n), 0.0);
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  return Values((torch::rand({n}, gen, opts) * 2 - 1) * bound);
}

}  // namespace evonas::model

#endif  // EVONAS_WORKER_MODEL_TENSORS_H_
