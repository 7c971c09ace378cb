// Multi-stage and residual networks, inheritance and the training genes
// (issues 4 and 7), through Train.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "common/genome.h"
#include "gtest/gtest.h"
#include "worker/model/mlp.h"
#include "worker/model/mlp_kernels.h"
#include "worker/model/trainer.h"

namespace evonas::model {
namespace {

// Rows of a smooth 1-D function, y = sin(3x) + 0.3 x^2, x uniform in
// [-1.5, 1.5].
Samples Smooth1d(int rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.5, 1.5);
  Samples s;
  s.x = {rows, 1, {}};
  s.y = {rows, 1, {}};
  for (int i = 0; i < rows; ++i) {
    const double x = u(rng);
    s.x.data.push_back(x);
    s.y.data.push_back(std::sin(3 * x) + 0.3 * x * x);
  }
  return s;
}

// Rows of 2-D uniform noise targets: nothing to learn, so the validation
// error stops improving early.
Samples Noise(int rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  Samples s;
  s.x = {rows, 2, {}};
  s.y = {rows, 1, {}};
  for (int i = 0; i < rows; ++i) {
    s.x.data.insert(s.x.data.end(), {u(rng), u(rng)});
    s.y.data.push_back(u(rng));
  }
  return s;
}

void AddLayer(google::protobuf::RepeatedPtrField<v1::DenseLayer>* layers,
              int width, v1::Activation activation, bool residual = false) {
  v1::DenseLayer* layer = layers->Add();
  layer->set_width(width);
  layer->set_activation(activation);
  layer->set_residual(residual);
}

void SetTraining(v1::TrainingConfig* t, double lr, int adam, int lbfgs,
                 int max_error = 0) {
  t->set_learning_rate(lr);
  t->set_adam_steps(adam);
  t->set_lbfgs_steps(lbfgs);
  t->set_max_error_steps(max_error);
}

// Stage 0: 16 tanh -> 16 tanh (residual).
v1::Genome OneStage() {
  v1::Genome g;
  AddLayer(g.mutable_hidden_layers(), 16, v1::ACTIVATION_TANH);
  AddLayer(g.mutable_hidden_layers(), 16, v1::ACTIVATION_TANH, true);
  SetTraining(g.mutable_training(), 1e-2, 500, 200);
  return g;
}

// Appends a stage 16 sine -> 16 sine (residual).
void AddSineStage(v1::Genome& g, int adam, int lbfgs, int max_error = 0) {
  v1::Stage* stage = g.add_residual_stages();
  AddLayer(stage->mutable_hidden_layers(), 16, v1::ACTIVATION_SINE);
  AddLayer(stage->mutable_hidden_layers(), 16, v1::ACTIVATION_SINE, true);
  SetTraining(stage->mutable_training(), 3e-3, adam, lbfgs, max_error);
}

TrainJob Smooth1dJob(const v1::Genome& genome) {
  TrainJob job;
  job.genome = genome;
  job.training = Smooth1d(300, 1);
  job.validation = Smooth1d(100, 2);
  job.seed = 3;
  return job;
}

double MaxError(const std::vector<double>& predicted, const Matrix& y) {
  double worst = 0;
  for (size_t i = 0; i < predicted.size(); ++i) {
    worst = std::max(worst, std::fabs(predicted[i] - y.data[i]));
  }
  return worst;
}

// The stage-0 result shared by the inheritance tests.
const TrainOutput& Parent() {
  static const TrainOutput* const parent = [] {
    absl::StatusOr<TrainOutput> out = Train(Smooth1dJob(OneStage()));
    EXPECT_TRUE(out.ok()) << out.status();
    return new TrainOutput(out.ok() ? *std::move(out) : TrainOutput{});
  }();
  return *parent;
}

// The parent's network plus a stage of the AddSineStage shape whose hidden
// weights are random and whose output layer is zero, as the ADD_STAGE
// morphism makes it.
NetworkParameters WithZeroStage(const NetworkParameters& parent) {
  NetworkParameters n = parent;
  MlpParameters stage;
  stage.x_mean = parent.stages[0].x_mean;
  stage.x_std = parent.stages[0].x_std;
  stage.y_mean = {0.0};
  stage.y_std = {1.0};
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (auto [in, out, residual] :
       {std::tuple{1, 16, false}, {16, 16, true}, {16, 1, false}}) {
    DenseParameters layer;
    layer.inputs = in;
    layer.outputs = out;
    layer.residual = residual;
    layer.activation =
        out == 1 ? v1::ACTIVATION_UNSPECIFIED : v1::ACTIVATION_SINE;
    for (int i = 0; i < in * out; ++i) {
      layer.weight.push_back(out == 1 ? 0.0 : u(rng));
    }
    for (int i = 0; i < out; ++i) layer.bias.push_back(out == 1 ? 0.0 : u(rng));
    stage.layers.push_back(std::move(layer));
  }
  n.stages.push_back(std::move(stage));
  return n;
}

TEST(StagedTrainTest, ZeroInitialisedStageLeavesOutputsBitIdentical) {
  const TrainOutput& parent = Parent();
  ASSERT_EQ(parent.parameters.stages.size(), 1u);
  const NetworkParameters child = WithZeroStage(parent.parameters);
  const Matrix& x = Smooth1dJob(OneStage()).validation.x;
  EXPECT_EQ(Forward(child, x.data, x.rows),
            Forward(parent.parameters, x.data, x.rows));

  // Through the trainer and the exported model: the added stage, trained
  // for no steps, keeps the parent's outputs bit for bit.
  v1::Genome genome = OneStage();
  AddSineStage(genome, 0, 0);
  TrainJob job = Smooth1dJob(genome);
  job.initial = child;
  job.first_trainable_stage = 1;
  absl::StatusOr<TrainOutput> out = Train(job);
  ASSERT_TRUE(out.ok()) << out.status();
  absl::StatusOr<Matrix> before = Predict(parent.model_file, x);
  absl::StatusOr<Matrix> after = Predict(out->model_file, x);
  ASSERT_TRUE(before.ok() && after.ok());
  EXPECT_EQ(before->data, after->data);
  EXPECT_EQ(out->metrics.validation().max_abs_error(),
            parent.metrics.validation().max_abs_error());
}

TEST(StagedTrainTest, InheritedChildKeepsFrozenStagesAndScalesSteps) {
  const TrainOutput& parent = Parent();
  v1::Genome genome = OneStage();
  AddSineStage(genome, 400, 100);
  TrainJob job = Smooth1dJob(genome);
  job.initial = WithZeroStage(parent.parameters);
  job.first_trainable_stage = 1;
  job.step_fraction = 0.25;
  absl::StatusOr<TrainOutput> out = Train(job);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->parameters.stages.size(), 2u);
  const MlpParameters& frozen = out->parameters.stages[0];
  const MlpParameters& kept = parent.parameters.stages[0];
  for (size_t i = 0; i < kept.layers.size(); ++i) {
    EXPECT_EQ(frozen.layers[i].weight, kept.layers[i].weight);
    EXPECT_EQ(frozen.layers[i].bias, kept.layers[i].bias);
  }
  EXPECT_EQ(frozen.y_std, kept.y_std);
  EXPECT_TRUE(out->stages[0].frozen);
  EXPECT_EQ(out->stages[1].adam_steps, 100);  // 400 * 0.25
  EXPECT_LE(out->stages[1].lbfgs_iterations, 25);
  // The child starts where the parent ended and never ends worse.
  EXPECT_LE(out->metrics.validation().max_abs_error(),
            parent.metrics.validation().max_abs_error());
}

TEST(StagedTrainTest, ReportsWhenEachPhaseLastImproved) {
  // From random weights every phase finds better weights, after its first
  // step and no later than its last.
  const StageReport& fresh = Parent().stages.at(0);
  EXPECT_GT(fresh.adam_best_step, 0);
  EXPECT_LE(fresh.adam_best_step, fresh.adam_steps);
  EXPECT_GT(fresh.lbfgs_best_iteration, 0);
  EXPECT_LE(fresh.lbfgs_best_iteration, fresh.lbfgs_iterations);
  EXPECT_EQ(fresh.max_error_best_iteration, 0);  // no max-error phase
  EXPECT_GT(fresh.adam_seconds, 0);
  EXPECT_GT(fresh.lbfgs_seconds, 0);
  EXPECT_LE(fresh.adam_seconds + fresh.lbfgs_seconds + fresh.max_error_seconds,
            fresh.seconds);

  // The trained network again, with 50 Adam steps at a rate that throws it
  // far from its optimum: no step beats the weights it started from.
  v1::Genome genome = OneStage();
  SetTraining(genome.mutable_training(), 1.0, 50, 0);
  TrainJob job = Smooth1dJob(genome);
  job.initial = Parent().parameters;
  absl::StatusOr<TrainOutput> out = Train(job);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->stages.at(0).adam_steps, 50);
  EXPECT_EQ(out->stages.at(0).adam_best_step, 0);
  EXPECT_EQ(out->metrics.validation().max_abs_error(),
            Parent().metrics.validation().max_abs_error());
}

TEST(StagedTrainTest, SecondStageImprovesMaxErrorTenfold) {
  v1::Genome genome = OneStage();
  AddSineStage(genome, 1000, 300);
  const TrainJob job = Smooth1dJob(genome);
  absl::StatusOr<TrainOutput> out = Train(job);
  ASSERT_TRUE(out.ok()) << out.status();
  const Matrix& x = job.validation.x;
  const double first = MaxError(
      Forward(out->parameters.stages[0], x.data, x.rows), job.validation.y);
  const double both = out->metrics.validation().max_abs_error();
  std::printf("validation max abs error: stage 0 %.3g, two stages %.3g\n",
              first, both);
  EXPECT_LT(both * 10, first);
  // The report's errors are the kernels', equal up to rounding.
  EXPECT_NEAR(out->stages[0].after_max_error, first, 1e-12);
  EXPECT_NEAR(out->stages[1].after_max_error, both, 1e-12);
}

bool OutputLayerIsZero(const MlpParameters& stage) {
  const DenseParameters& out = stage.layers.back();
  return std::all_of(out.weight.begin(), out.weight.end(),
                     [](double w) { return w == 0; }) &&
         std::all_of(out.bias.begin(), out.bias.end(),
                     [](double b) { return b == 0; });
}

TEST(StagedTrainTest, AFreshStageThatCannotBeatAddingNothingAddsNothing) {
  // One Adam step at a vanishing rate leaves the second stage at its SIREN
  // initialisation, whose outputs are far worse than none.
  v1::Genome genome = OneStage();
  AddSineStage(genome, 1, 0);
  genome.mutable_residual_stages(0)->mutable_training()->set_learning_rate(
      1e-12);
  const TrainJob job = Smooth1dJob(genome);
  absl::StatusOr<TrainOutput> out = Train(job);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->parameters.stages.size(), 2u);
  EXPECT_TRUE(OutputLayerIsZero(out->parameters.stages[1]));
  const Matrix& x = job.validation.x;
  const double first = MaxError(
      Forward(out->parameters.stages[0], x.data, x.rows), job.validation.y);
  EXPECT_NEAR(out->metrics.validation().max_abs_error(), first, 1e-12);
  // What the stage would have added had it been kept.
  EXPECT_GT(out->stages[1].after_max_error, first);
}

TEST(StagedTrainTest, TimeLimitStopsTrainingWithTheBestWeightsSoFar) {
  // Far more steps than fit in the limit, in three stages.
  v1::Genome genome = OneStage();
  genome.mutable_training()->set_adam_steps(kMaxAdamSteps);
  AddSineStage(genome, 1000, 300);
  AddSineStage(genome, 1000, 300);
  TrainJob job = Smooth1dJob(genome);
  job.max_training_seconds = 0.5;
  absl::StatusOr<TrainOutput> out = Train(job);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(out->metrics.stopped_at_time_limit());
  ASSERT_EQ(out->stages.size(), 3u);
  for (const StageReport& stage : out->stages) EXPECT_TRUE(stage.time_limited);
  EXPECT_GT(out->stages[0].adam_steps, 50);
  EXPECT_LT(out->stages[0].adam_steps, kMaxAdamSteps);
  EXPECT_EQ(out->stages[0].lbfgs_iterations, 0);
  EXPECT_EQ(out->stages[1].adam_steps, 0);
  std::printf("limit %.1f s: trained %.4f s, %d adam steps\n",
              job.max_training_seconds, out->metrics.training_seconds(),
              out->stages[0].adam_steps);
  // A loose bound: the limit is kept by construction, but a loaded machine
  // may pause the process between the last check and the end.
  EXPECT_LT(out->metrics.training_seconds(), job.max_training_seconds + 1);
  // The untrained stages add nothing: the model is the first stage's best.
  ASSERT_EQ(out->parameters.stages.size(), 3u);
  EXPECT_TRUE(OutputLayerIsZero(out->parameters.stages[1]));
  EXPECT_TRUE(OutputLayerIsZero(out->parameters.stages[2]));
  const Matrix& x = job.validation.x;
  EXPECT_NEAR(out->metrics.validation().max_abs_error(),
              MaxError(Forward(out->parameters.stages[0], x.data, x.rows),
                       job.validation.y),
              1e-12);
  EXPECT_NEAR(out->metrics.validation().max_abs_error(),
              out->stages[0].after_adam, 1e-12);
  EXPECT_EQ(out->metrics.parameter_count(),
            evonas::ParameterCount(genome, 1, 1));

  // No limit, or a limit never reached: no flag.
  TrainJob unlimited = Smooth1dJob(OneStage());
  unlimited.max_training_seconds = 3600;
  absl::StatusOr<TrainOutput> full = Train(unlimited);
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_FALSE(full->metrics.stopped_at_time_limit());
  EXPECT_FALSE(full->stages[0].time_limited);
  EXPECT_EQ(full->stages[0].adam_steps, 500);
}

TEST(StagedTrainTest, TimeLimitInTheLbfgsPhaseKeepsItsBestWeights) {
  v1::Genome genome = OneStage();
  genome.mutable_training()->set_adam_steps(100);
  genome.mutable_training()->set_lbfgs_steps(kMaxLbfgsSteps);
  TrainJob job = Smooth1dJob(genome);
  job.max_training_seconds = 0.5;
  absl::StatusOr<TrainOutput> out = Train(job);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(out->metrics.stopped_at_time_limit());
  EXPECT_EQ(out->stages[0].adam_steps, 100);
  EXPECT_GT(out->stages[0].lbfgs_iterations, 0);
  EXPECT_LT(out->stages[0].lbfgs_iterations, kMaxLbfgsSteps);
  EXPECT_LE(out->stages[0].after_lbfgs, out->stages[0].after_adam);
  EXPECT_NEAR(out->metrics.validation().max_abs_error(),
              out->stages[0].after_lbfgs, 1e-12);
}

TEST(StagedTrainTest, ThreeStagesWithResidualLayersExportExactly) {
  v1::Genome genome = OneStage();
  AddSineStage(genome, 100, 20);
  AddSineStage(genome, 100, 20);
  genome.mutable_residual_stages(1)->mutable_hidden_layers(0)->set_activation(
      v1::ACTIVATION_GELU);
  const TrainJob job = Smooth1dJob(genome);
  absl::StatusOr<TrainOutput> out = Train(job);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->parameters.stages.size(), 3u);
  EXPECT_EQ(out->metrics.parameter_count(),
            evonas::ParameterCount(genome, 1, 1));
  const Matrix& x = job.validation.x;
  absl::StatusOr<Matrix> predicted = Predict(out->model_file, x);
  ASSERT_TRUE(predicted.ok()) << predicted.status();
  const std::vector<double> reference = Forward(out->parameters, x.data, x.rows);
  ASSERT_EQ(reference.size(), predicted->data.size());
  for (size_t i = 0; i < reference.size(); ++i) {
    EXPECT_NEAR(reference[i], predicted->data[i], 1e-12) << i;
  }
  // Each stage's output is scaled back: later stages are corrections.
  const std::vector<double> last =
      Forward(out->parameters.stages[2], x.data, x.rows);
  EXPECT_LT(MaxError(last, Matrix{x.rows, 1, std::vector<double>(x.rows)}),
            0.1);
}

TEST(TrainingGenesTest, PatienceStopsAdamEarly) {
  TrainJob job;
  v1::Genome& g = job.genome;
  AddLayer(g.mutable_hidden_layers(), 32, v1::ACTIVATION_TANH);
  SetTraining(g.mutable_training(), 1e-2, 3000, 0);
  job.training = Noise(200, 1);
  job.validation = Noise(100, 2);
  absl::StatusOr<TrainOutput> patient = Train(job);
  g.mutable_training()->set_patience_steps(200);
  absl::StatusOr<TrainOutput> impatient = Train(job);
  ASSERT_TRUE(patient.ok() && impatient.ok());
  EXPECT_EQ(patient->stages[0].adam_steps, 3000);
  EXPECT_LT(impatient->stages[0].adam_steps, 3000);
  EXPECT_EQ(impatient->stages[0].adam_steps % 50, 0);
  std::printf("patience 200 stopped after %d of 3000 steps\n",
              impatient->stages[0].adam_steps);
}

double SumOfSquaredWeights(const NetworkParameters& n) {
  double sum = 0;
  for (const MlpParameters& stage : n.stages) {
    for (const DenseParameters& layer : stage.layers) {
      for (double w : layer.weight) sum += w * w;
    }
  }
  return sum;
}

TEST(TrainingGenesTest, WeightDecayShrinksTheWeights) {
  TrainJob job = Smooth1dJob(OneStage());
  v1::Genome& g = job.genome;
  SetTraining(g.mutable_training(), 3e-2, 1000, 0);
  // Selected on the training rows, whose error falls steadily: the weights
  // compared are those at the end of training.
  job.validation = {{0, 1, {}}, {0, 1, {}}};
  absl::StatusOr<TrainOutput> plain = Train(job);
  g.mutable_training()->set_weight_decay(0.1);
  absl::StatusOr<TrainOutput> decayed = Train(job);
  ASSERT_TRUE(plain.ok() && decayed.ok());
  const double a = SumOfSquaredWeights(plain->parameters);
  const double b = SumOfSquaredWeights(decayed->parameters);
  std::printf("sum of squared weights: %.4g plain, %.4g with decay 0.1\n", a,
              b);
  EXPECT_LT(b, 0.8 * a);
}

TEST(TrainingGenesTest, WeightPenaltyShrinksTheWeightsInTheLbfgsPhases) {
  TrainJob job = Smooth1dJob(OneStage());
  v1::Genome& g = job.genome;
  // L-BFGS and the max-error phase only, so that the penalty acts on every
  // step; both runs start from the same initial weights.
  SetTraining(g.mutable_training(), 1e-2, 0, 200, 100);
  absl::StatusOr<TrainOutput> plain = Train(job);
  g.mutable_training()->set_weight_penalty(1e-4);
  absl::StatusOr<TrainOutput> penalised = Train(job);
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_TRUE(penalised.ok()) << penalised.status();
  const double a = SumOfSquaredWeights(plain->parameters);
  const double b = SumOfSquaredWeights(penalised->parameters);
  const double plain_max = plain->metrics.validation().max_abs_error();
  const double penalised_max = penalised->metrics.validation().max_abs_error();
  std::printf(
      "sum of squared weights: %.4g plain, %.4g with penalty 1e-4; "
      "validation max abs error %.3g and %.3g\n",
      a, b, plain_max, penalised_max);
  EXPECT_LT(b, 0.8 * a);
  // It still fits, within a tenth of the function's range of about 2: the
  // penalty's gradient is consistent with its value, or the strong-Wolfe
  // line search would have stalled.
  EXPECT_LT(penalised_max, 0.2);
}

TEST(TrainingGenesTest, WarmupRampsTheLearningRate) {
  // 4 warm-up steps of 10: lr0/4, lr0/2, 3 lr0/4, lr0, then the cosine.
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(1.0, 0, 10, 4, 0.01), 0.25);
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(1.0, 2, 10, 4, 0.01), 0.75);
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(1.0, 3, 10, 4, 0.01), 1.0);
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(1.0, 4, 10, 4, 0.01), 1.0);
  EXPECT_LT(ScheduledLearningRate(1.0, 9, 10, 4, 0.01), 0.1);
  // No warm-up: the plain cosine.
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(2.0, 0, 10, 0, 0.01), 2.0);
  EXPECT_NEAR(ScheduledLearningRate(2.0, 5, 10, 0, 0.01), 2.0 * 0.505, 1e-15);

  // In training: a first Adam step moves every weight by about the
  // learning rate, so with 1000 warm-up steps one step barely moves them.
  TrainJob job = Smooth1dJob(OneStage());
  SetTraining(job.genome.mutable_training(), 1e-1, 1, 0);
  absl::StatusOr<TrainOutput> full = Train(job);
  job.genome.mutable_training()->set_adam_steps(1000);
  job.genome.mutable_training()->set_warmup_steps(1000);
  job.step_fraction = 0.001;  // 1 Adam step, 1 warm-up step
  absl::StatusOr<TrainOutput> warm = Train(job);
  ASSERT_TRUE(full.ok() && warm.ok());
  EXPECT_EQ(warm->stages[0].adam_steps, 1);
  // Same seed, same initial weights, same single step and learning rate.
  EXPECT_EQ(full->parameters.stages[0].layers[0].weight,
            warm->parameters.stages[0].layers[0].weight);
}

// The largest |weight| of stage `k`'s first layer.
double LargestFirstLayerWeight(const TrainOutput& out, size_t k) {
  double largest = 0;
  for (double w : out.parameters.stages[k].layers[0].weight) {
    largest = std::max(largest, std::fabs(w));
  }
  return largest;
}

TEST(TrainingGenesTest, SirenOmegaSetsTheFirstSineLayersFrequencies) {
  // One Adam step at a negligible rate leaves the weights at their SIREN
  // initialisation: with one input the first sine layer's weights are
  // U(-omega, omega), so 16 of them span nearly all of it.
  v1::Genome g = OneStage();
  SetTraining(g.mutable_training(), 1e-12, 1, 0);
  AddSineStage(g, 1, 0);
  g.mutable_residual_stages(0)->mutable_training()->set_learning_rate(1e-12);
  absl::StatusOr<TrainOutput> standard = Train(Smooth1dJob(g));
  g.mutable_residual_stages(0)->mutable_training()->set_siren_omega(2);
  ASSERT_TRUE(ValidateGenome(g).ok());
  absl::StatusOr<TrainOutput> low = Train(Smooth1dJob(g));
  ASSERT_TRUE(standard.ok() && low.ok());
  const double a = LargestFirstLayerWeight(*standard, 1);
  const double b = LargestFirstLayerWeight(*low, 1);
  std::printf("largest first sine-layer weight: %.4g default, %.4g omega 2\n",
              a, b);
  EXPECT_GT(a, 5.0);
  EXPECT_LE(b, 2.0 + 1e-9);
  EXPECT_GT(b, 1.0);

  g.mutable_residual_stages(0)->mutable_training()->set_siren_omega(-1);
  EXPECT_FALSE(ValidateGenome(g).ok());
}

TEST(TrainingGenesTest, MaxErrorPhaseLowersTheValidationMaximum) {
  v1::Genome genome = OneStage();
  genome.mutable_training()->set_lbfgs_steps(50);
  genome.mutable_training()->set_max_error_steps(200);
  absl::StatusOr<TrainOutput> out = Train(Smooth1dJob(genome));
  ASSERT_TRUE(out.ok()) << out.status();
  const StageReport& r = out->stages[0];
  std::printf("validation max abs error after adam %.3g, lbfgs %.3g, "
              "max-error phase %.3g (%d iterations)\n",
              r.after_adam, r.after_lbfgs, r.after_max_error,
              r.max_error_iterations);
  EXPECT_GT(r.max_error_iterations, 0);
  EXPECT_LT(r.after_max_error, r.after_lbfgs);
  EXPECT_NEAR(out->metrics.validation().max_abs_error(), r.after_max_error,
              1e-12);
}

// Lawson's re-weighting aims the max-error phase at the minimax fit. A
// network too small for the function (one layer of 3 tanh) cannot fit every
// row, so the two differ: judged on the training rows themselves, the
// rounds end with a smaller maximum than one round of as many iterations.
TEST(TrainingGenesTest, MaxErrorRoundsLowerTheMaximumOfAnUnderfittingNetwork) {
  for (uint64_t seed : {3, 4, 5}) {
    v1::Genome genome;
    AddLayer(genome.mutable_hidden_layers(), 3, v1::ACTIVATION_TANH);
    SetTraining(genome.mutable_training(), 1e-2, 500, 200, 200);
    genome.mutable_training()->set_max_error_power(4);
    TrainJob job = Smooth1dJob(genome);
    job.validation = job.training;
    job.seed = seed;
    absl::StatusOr<TrainOutput> one = Train(job);
    job.genome.mutable_training()->set_max_error_rounds(5);
    absl::StatusOr<TrainOutput> five = Train(job);
    ASSERT_TRUE(one.ok()) << one.status();
    ASSERT_TRUE(five.ok()) << five.status();
    const StageReport& a = one->stages[0];
    const StageReport& b = five->stages[0];
    std::printf(
        "seed %d: max abs error after lbfgs %.4g; after the max-error "
        "phase %.4g in one round (%d iterations), %.4g in five (%d)\n",
        static_cast<int>(seed), a.after_lbfgs, a.after_max_error,
        a.max_error_iterations, b.after_max_error, b.max_error_iterations);
    EXPECT_EQ(a.after_lbfgs, b.after_lbfgs);  // the same run up to the phase
    EXPECT_LT(b.after_max_error, 0.9 * a.after_max_error);
  }
}

TEST(StagedTrainTest, RejectsBadInheritance) {
  v1::Genome genome = OneStage();
  AddSineStage(genome, 10, 0);
  TrainJob job = Smooth1dJob(genome);
  job.first_trainable_stage = 1;  // without initial weights
  EXPECT_EQ(Train(job).status().code(), absl::StatusCode::kInvalidArgument);

  job.initial = Parent().parameters;  // one stage for a two-stage genome
  absl::Status s = Train(job).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("1 stages, the genome has 2"), std::string::npos)
      << s;

  job.initial = WithZeroStage(Parent().parameters);
  job.initial->stages[1].layers[1].residual = false;
  s = Train(job).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("stages[1].layers[1]"), std::string::npos) << s;

  job.initial = WithZeroStage(Parent().parameters);
  job.initial->stages[0].x_std[0] = 0;
  s = Train(job).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("standard deviation of 0"), std::string::npos)
      << s;

  job.initial = WithZeroStage(Parent().parameters);
  job.first_trainable_stage = 2;
  EXPECT_EQ(Train(job).status().code(), absl::StatusCode::kInvalidArgument);
  job.first_trainable_stage = 1;
  for (double fraction : {0.0, -1.0, 1.5, std::nan("")}) {
    job.step_fraction = fraction;
    EXPECT_EQ(Train(job).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace evonas::model
