#include "common/latency_table.h"

#include "gtest/gtest.h"

namespace evonas {
namespace {

v1::LatencyTable TableWith(double output_intercept, double output_slope,
                           double tanh_intercept, double tanh_slope) {
  v1::LatencyTable table;
  table.set_hardware_class("Test CPU x1");
  v1::LayerLatencyModel* output = table.add_layers();
  output->set_activation(v1::ACTIVATION_UNSPECIFIED);
  output->set_intercept_seconds(output_intercept);
  output->set_seconds_per_multiply_add(output_slope);
  v1::LayerLatencyModel* tanh = table.add_layers();
  tanh->set_activation(v1::ACTIVATION_TANH);
  tanh->set_intercept_seconds(tanh_intercept);
  tanh->set_seconds_per_multiply_add(tanh_slope);
  return table;
}

TEST(FitLayerLatencyTest, RecoversAnExactLine) {
  std::vector<LayerTiming> timings = {
      {4, 8, 1e-6 + 32 * 2e-9}, {16, 16, 1e-6 + 256 * 2e-9},
      {64, 32, 1e-6 + 2048 * 2e-9}};
  auto model = FitLayerLatency(v1::ACTIVATION_GELU, timings);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->activation(), v1::ACTIVATION_GELU);
  EXPECT_NEAR(model->intercept_seconds(), 1e-6, 1e-12);
  EXPECT_NEAR(model->seconds_per_multiply_add(), 2e-9, 1e-15);
}

TEST(FitLayerLatencyTest, ClampsANegativeSlopeFromNoise) {
  // Noise made the bigger layer faster: the fit must not predict that.
  auto model = FitLayerLatency(v1::ACTIVATION_RELU,
                               {{1, 1, 3e-6}, {100, 100, 1e-6}});
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->seconds_per_multiply_add(), 0);
  EXPECT_DOUBLE_EQ(model->intercept_seconds(), 2e-6);
}

TEST(FitLayerLatencyTest, ClampsANegativeIntercept) {
  auto model = FitLayerLatency(v1::ACTIVATION_RELU,
                               {{1, 1, 0}, {10, 10, 0}, {100, 100, 1e-3}});
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->intercept_seconds(), 0);
  EXPECT_GT(model->seconds_per_multiply_add(), 0);
}

TEST(FitLayerLatencyTest, RejectsBadTimings) {
  EXPECT_EQ(FitLayerLatency(v1::ACTIVATION_TANH, {{8, 8, 1e-6}, {8, 8, 2e-6}})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FitLayerLatency(v1::ACTIVATION_TANH, {{8, 8, -1}, {4, 4, 1}})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FitLayerLatency(v1::ACTIVATION_TANH, {{0, 8, 1}, {4, 4, 1}})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ValidateLatencyTableTest, AcceptsAndRejects) {
  EXPECT_TRUE(ValidateLatencyTable(TableWith(1e-6, 1e-9, 2e-6, 1e-9)).ok());
  v1::LatencyTable no_class = TableWith(1e-6, 1e-9, 2e-6, 1e-9);
  no_class.clear_hardware_class();
  EXPECT_EQ(ValidateLatencyTable(no_class).code(),
            absl::StatusCode::kInvalidArgument);
  v1::LatencyTable negative = TableWith(1e-6, -1e-9, 2e-6, 1e-9);
  EXPECT_EQ(ValidateLatencyTable(negative).code(),
            absl::StatusCode::kInvalidArgument);
  v1::LatencyTable duplicate = TableWith(1e-6, 1e-9, 2e-6, 1e-9);
  *duplicate.add_layers() = duplicate.layers(1);
  EXPECT_EQ(ValidateLatencyTable(duplicate).code(),
            absl::StatusCode::kInvalidArgument);
  v1::LatencyTable no_output;
  no_output.set_hardware_class("x");
  *no_output.add_layers() = duplicate.layers(1);
  EXPECT_EQ(ValidateLatencyTable(no_output).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EstimateLatencySecondsTest, SumsEveryAffineLayerOfEveryStage) {
  const v1::LatencyTable table = TableWith(1.0, 0.001, 10.0, 0.01);
  v1::Genome genome;
  v1::DenseLayer* a = genome.add_hidden_layers();
  a->set_width(4);
  a->set_activation(v1::ACTIVATION_TANH);
  v1::DenseLayer* b = genome.add_hidden_layers();
  b->set_width(5);
  b->set_activation(v1::ACTIVATION_TANH);
  // 3 -> 4 (tanh) -> 5 (tanh) -> 2 (linear).
  const double main_stage = (10 + 0.01 * 12) + (10 + 0.01 * 20) + (1 + 0.001 * 10);
  auto estimate = EstimateLatencySeconds(genome, 3, 2, table);
  ASSERT_TRUE(estimate.ok()) << estimate.status();
  EXPECT_NEAR(*estimate, main_stage, 1e-12);

  v1::Stage* stage = genome.add_residual_stages();
  v1::DenseLayer* c = stage->add_hidden_layers();
  c->set_width(6);
  c->set_activation(v1::ACTIVATION_TANH);
  // 3 -> 6 (tanh) -> 2 (linear).
  const double residual_stage = (10 + 0.01 * 18) + (1 + 0.001 * 12);
  estimate = EstimateLatencySeconds(genome, 3, 2, table);
  ASSERT_TRUE(estimate.ok()) << estimate.status();
  EXPECT_NEAR(*estimate, main_stage + residual_stage, 1e-12);
}

TEST(EstimateLatencySecondsTest, MissingActivationIsNotFound) {
  v1::Genome genome;
  v1::DenseLayer* a = genome.add_hidden_layers();
  a->set_width(4);
  a->set_activation(v1::ACTIVATION_SINE);
  EXPECT_EQ(EstimateLatencySeconds(genome, 3, 2, TableWith(1, 1, 1, 1))
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace evonas
