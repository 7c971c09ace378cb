#include "common/simulated_evaluator.h"

#include <cmath>
#include <set>
#include <vector>

#include "common/genome.h"
#include "gtest/gtest.h"

namespace evonas {
namespace {

v1::Genome Mlp(std::vector<int> widths, v1::Activation activation,
               double learning_rate = 3e-3, int adam_steps = 2000,
               int lbfgs_steps = 200) {
  v1::Genome genome;
  for (int width : widths) {
    v1::DenseLayer* layer = genome.add_hidden_layers();
    layer->set_width(width);
    layer->set_activation(activation);
  }
  genome.mutable_training()->set_learning_rate(learning_rate);
  genome.mutable_training()->set_adam_steps(adam_steps);
  genome.mutable_training()->set_lbfgs_steps(lbfgs_steps);
  return genome;
}

SimulationOptions Hartmann3(uint64_t seed = 1) {
  SimulationOptions options;
  options.inputs = 3;
  options.outputs = 1;
  options.seed = seed;
  options.within_tolerance = 1e-3;
  return options;
}

// The noise-free error; the shape tests use it so that noise cannot flip
// small differences.
double Expected(const v1::Genome& genome) {
  return SimulatedExpectedError(genome, Hartmann3());
}

TEST(SimulateTrainingTest, DeterministicAndConsistentWithTheController) {
  const v1::Genome genome = Mlp({64, 32}, v1::ACTIVATION_TANH);
  SimulationOptions options = Hartmann3(7);
  options.with_test = true;
  SimulatedTraining a = SimulateTraining(genome, options);
  SimulatedTraining b = SimulateTraining(genome, options);
  EXPECT_EQ(a.metrics.SerializeAsString(), b.metrics.SerializeAsString());
  EXPECT_EQ(a.model_file, b.model_file);
  // The controller checks both of these against the report.
  EXPECT_EQ(a.metrics.parameter_count(), ParameterCount(genome, 3, 1));
  EXPECT_EQ(a.metrics.model_bytes(), static_cast<int64_t>(a.model_file.size()));
  EXPECT_NE(a.model_file.find("simulated"), std::string::npos);
  EXPECT_NE(a.model_file.find(DescribeGenome(genome)), std::string::npos);
  for (const v1::Evaluation& e : {a.metrics.validation(), a.metrics.test()}) {
    EXPECT_GT(e.row_count(), 0);
    EXPECT_TRUE(std::isfinite(e.max_abs_error()));
    EXPECT_GT(e.max_abs_error(), e.rmse());
    EXPECT_GT(e.rmse(), e.mae());
    EXPECT_GT(e.mae(), 0);
    EXPECT_GE(e.fraction_within(), 0);
    EXPECT_LE(e.fraction_within(), 1);
  }
  EXPECT_GT(a.metrics.training_seconds(), 0);
  EXPECT_GT(a.metrics.inference_latency_seconds(), 0);
  EXPECT_GT(a.metrics.training_row_count(), 0);
  // The validation result does not depend on whether a test set exists.
  options.with_test = false;
  SimulatedTraining c = SimulateTraining(genome, options);
  EXPECT_FALSE(c.metrics.has_test());
  EXPECT_FALSE(c.metrics.has_judging());
  EXPECT_EQ(c.metrics.validation().SerializeAsString(),
            a.metrics.validation().SerializeAsString());
  // Judging rows add an evaluation and change neither of the others.
  options.with_test = true;
  options.with_judging = true;
  SimulatedTraining d = SimulateTraining(genome, options);
  ASSERT_TRUE(d.metrics.has_judging());
  EXPECT_GT(d.metrics.judging().row_count(), 0);
  EXPECT_TRUE(std::isfinite(d.metrics.judging().max_abs_error()));
  EXPECT_NE(d.metrics.judging().max_abs_error(),
            d.metrics.validation().max_abs_error());
  EXPECT_EQ(d.metrics.validation().SerializeAsString(),
            a.metrics.validation().SerializeAsString());
  EXPECT_EQ(d.metrics.test().SerializeAsString(),
            a.metrics.test().SerializeAsString());
}

TEST(SimulateTrainingTest, SeedGivesALittleNoiseAroundTheExpectedError) {
  const v1::Genome genome = Mlp({64, 32}, v1::ACTIVATION_TANH);
  const double expected = Expected(genome);
  std::set<double> errors;
  double log_sum = 0;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    const double error = SimulateTraining(genome, Hartmann3(seed))
                             .metrics.validation()
                             .max_abs_error();
    EXPECT_LT(std::abs(std::log(error / expected)), 0.75);  // 5 sigma
    errors.insert(error);
    log_sum += std::log(error / expected);
  }
  EXPECT_EQ(errors.size(), 200u);
  EXPECT_LT(std::abs(log_sum / 200), 0.05);  // lognormal around expected
}

TEST(SimulateTrainingTest, ErrorFallsWithParametersWithDiminishingReturns) {
  std::vector<double> errors, params;
  for (int width : {8, 16, 32, 64}) {
    const v1::Genome genome = Mlp({width, width, width}, v1::ACTIVATION_TANH);
    errors.push_back(Expected(genome));
    params.push_back(ParameterCount(genome, 3, 1));
  }
  for (size_t i = 1; i < errors.size(); ++i) {
    EXPECT_LT(errors[i], errors[i - 1]) << i;
    if (i >= 2) {
      // Less error removed per parameter added.
      const double gain =
          (errors[i - 1] - errors[i]) / (params[i] - params[i - 1]);
      const double before =
          (errors[i - 2] - errors[i - 1]) / (params[i - 1] - params[i - 2]);
      EXPECT_LT(gain, before) << i;
    }
  }
  // A toy network is far worse than a moderate one.
  EXPECT_GT(errors[0], 10 * errors[3]);
}

TEST(SimulateTrainingTest, ErrorFallsWithStepsAndBigNetworksNeedThem) {
  const v1::Genome small_short = Mlp({16}, v1::ACTIVATION_TANH, 3e-3, 500, 0);
  const v1::Genome small_long = Mlp({16}, v1::ACTIVATION_TANH, 3e-3, 3000, 0);
  const v1::Genome big_short =
      Mlp({128, 128, 128}, v1::ACTIVATION_TANH, 3e-3, 500, 0);
  const v1::Genome big_long =
      Mlp({128, 128, 128}, v1::ACTIVATION_TANH, 3e-3, 3000, 200);
  EXPECT_LT(Expected(small_long), Expected(small_short));
  EXPECT_LT(Expected(big_long), Expected(big_short));
  // Steps matter more for the big network.
  EXPECT_GT(Expected(big_short) / Expected(big_long),
            Expected(small_short) / Expected(small_long));
}

TEST(SimulateTrainingTest, LearningRateHasAnOptimumNear3e3) {
  const double best = Expected(Mlp({32, 32}, v1::ACTIVATION_SILU, 3e-3));
  EXPECT_LT(best, Expected(Mlp({32, 32}, v1::ACTIVATION_SILU, 1e-3)));
  EXPECT_LT(best, Expected(Mlp({32, 32}, v1::ACTIVATION_SILU, 1e-2)));
  EXPECT_LT(Expected(Mlp({32, 32}, v1::ACTIVATION_SILU, 1e-2)),
            Expected(Mlp({32, 32}, v1::ACTIVATION_SILU, 1e-1)));
}

TEST(SimulateTrainingTest, ActivationMatters) {
  const double gelu = Expected(Mlp({32, 32}, v1::ACTIVATION_GELU));
  const double tanh = Expected(Mlp({32, 32}, v1::ACTIVATION_TANH));
  const double relu = Expected(Mlp({32, 32}, v1::ACTIVATION_RELU));
  EXPECT_LT(gelu, tanh);
  EXPECT_LT(tanh, relu);
}

TEST(SimulateTrainingTest, TrainingSecondsProportionalToParametersTimesSteps) {
  auto seconds = [](const v1::Genome& genome) {
    return SimulateTraining(genome, Hartmann3()).metrics.training_seconds();
  };
  const v1::Genome base = Mlp({32}, v1::ACTIVATION_TANH, 3e-3, 1000, 0);
  const v1::Genome twice_steps = Mlp({32}, v1::ACTIVATION_TANH, 3e-3, 2000, 0);
  const v1::Genome wider = Mlp({64}, v1::ACTIVATION_TANH, 3e-3, 1000, 0);
  EXPECT_NEAR(seconds(twice_steps) / seconds(base), 2, 1e-12);
  EXPECT_NEAR(seconds(wider) / seconds(base),
              double(ParameterCount(wider, 3, 1)) / ParameterCount(base, 3, 1),
              1e-12);
}

TEST(SimulateTrainingTest, FractionWithinGrowsWithTolerance) {
  const v1::Genome genome = Mlp({64, 32}, v1::ACTIVATION_TANH);
  SimulationOptions options = Hartmann3();
  double previous = -1;
  for (double tolerance : {1e-7, 1e-5, 1e-4, 1e-3, 1e-1}) {
    options.within_tolerance = tolerance;
    const double fraction = SimulateTraining(genome, options)
                                .metrics.validation()
                                .fraction_within();
    EXPECT_GE(fraction, previous);
    previous = fraction;
  }
  EXPECT_GT(previous, 0.99);
}

v1::Genome WithStage(v1::Genome genome, int width, v1::Activation activation) {
  v1::Stage* stage = genome.add_residual_stages();
  v1::DenseLayer* layer = stage->add_hidden_layers();
  layer->set_width(width);
  layer->set_activation(activation);
  *stage->mutable_training() = genome.training();
  return genome;
}

TEST(SimulateTrainingTest, ASmallExtraStageIsACheapWayDown) {
  const v1::Genome base = Mlp({32, 32}, v1::ACTIVATION_TANH);
  const v1::Genome staged = WithStage(base, 16, v1::ACTIVATION_SINE);
  const v1::Genome twice = WithStage(staged, 16, v1::ACTIVATION_SINE);
  EXPECT_LT(Expected(staged), 0.8 * Expected(base));
  EXPECT_LT(Expected(twice), Expected(staged));
  // Never more than 95% of the residual per stage.
  const v1::Genome huge = WithStage(base, 2000, v1::ACTIVATION_SINE);
  EXPECT_GE(Expected(huge), 0.05 * Expected(base) * (1 - 1e-12));
  // Cheaper than growing the first stage by as many parameters.
  const int64_t extra = ParameterCount(staged, 3, 1) - ParameterCount(base, 3, 1);
  const v1::Genome wider = Mlp({32 + static_cast<int>(extra / 35), 32},
                               v1::ACTIVATION_TANH);
  EXPECT_LT(Expected(staged), Expected(wider));
  // Seconds add up over stages; parameters count every stage.
  const SimulatedTraining a = SimulateTraining(base, Hartmann3());
  const SimulatedTraining b = SimulateTraining(staged, Hartmann3());
  EXPECT_EQ(b.metrics.parameter_count(), ParameterCount(staged, 3, 1));
  EXPECT_NEAR(b.metrics.training_seconds() - a.metrics.training_seconds(),
              1e-7 * (3 * 16 + 16 + 16 + 1) * (2000 + 4 * 200), 1e-12);
}

TEST(SimulateTrainingTest, ResidualLayersMakeDepthCheap) {
  v1::Genome plain = Mlp({32, 32, 32, 32, 32, 32, 32}, v1::ACTIVATION_TANH);
  v1::Genome skips = plain;
  for (int i = 1; i < 7; i += 2) skips.mutable_hidden_layers(i)->set_residual(true);
  EXPECT_EQ(ParameterCount(plain, 3, 1), ParameterCount(skips, 3, 1));
  EXPECT_LT(Expected(skips), Expected(plain));
}

TEST(SimulateTrainingTest, MaxErrorPhaseLowersTheMaximumError) {
  v1::Genome genome = Mlp({32, 32}, v1::ACTIVATION_TANH);
  const double before = Expected(genome);
  genome.mutable_training()->set_max_error_steps(300);
  EXPECT_LT(Expected(genome), 0.75 * before);
}

TEST(SimulateTrainingTest, InheritanceIsCheapAndNearlyAsGood) {
  const v1::Genome parent = Mlp({32, 32}, v1::ACTIVATION_TANH, 3e-3, 3000);
  for (v1::MorphismKind kind :
       {v1::MORPHISM_KIND_WIDEN, v1::MORPHISM_KIND_NARROW,
        v1::MORPHISM_KIND_CONTINUE}) {
    v1::Genome child = parent;
    if (kind == v1::MORPHISM_KIND_WIDEN) {
      child.mutable_hidden_layers(0)->set_width(48);
    } else if (kind == v1::MORPHISM_KIND_NARROW) {
      child.mutable_hidden_layers(0)->set_width(24);
    } else {
      child.mutable_training()->set_adam_steps(1500);
    }
    SimulationOptions inherit = Hartmann3();
    inherit.step_fraction = 0.25;
    inherit.inheritance = SimulatedInheritance{parent, {}};
    inherit.inheritance->morphism.set_kind(kind);
    const double scratch = SimulatedExpectedError(child, Hartmann3());
    const double inherited = SimulatedExpectedError(child, inherit);
    const double penalty = kind == v1::MORPHISM_KIND_NARROW ? 1.2 : 1.1;
    EXPECT_LE(inherited, penalty * scratch * (1 + 1e-12)) << kind;
    EXPECT_GT(inherited, 0.5 * scratch) << kind;
    EXPECT_NEAR(SimulateTraining(child, inherit).metrics.training_seconds(),
                0.25 *
                    SimulateTraining(child, Hartmann3())
                        .metrics.training_seconds(),
                1e-12)
        << kind;
  }
  // Only the new stage trains after ADD_STAGE.
  const v1::Genome staged = WithStage(parent, 8, v1::ACTIVATION_SINE);
  SimulationOptions inherit = Hartmann3();
  inherit.step_fraction = 0.5;
  inherit.inheritance = SimulatedInheritance{parent, {}};
  inherit.inheritance->morphism.set_kind(v1::MORPHISM_KIND_ADD_STAGE);
  const SimulatedTraining run = SimulateTraining(staged, inherit);
  EXPECT_NEAR(run.metrics.training_seconds(),
              0.5 * 1e-7 * (3 * 8 + 8 + 8 + 1) * (3000 + 4 * 200), 1e-12);
  EXPECT_LT(SimulatedExpectedError(staged, inherit), Expected(parent));
  EXPECT_NE(run.model_file.find("ADD_STAGE"), std::string::npos);
}

TEST(SimulateTrainingTest, ShortRunsAreCheapAndTheirPromotionCatchesUp) {
  const v1::Genome genome = Mlp({32, 32}, v1::ACTIVATION_TANH, 3e-3, 3000);
  SimulationOptions level1 = Hartmann3();
  level1.step_fraction = 0.25;
  const SimulatedTraining full = SimulateTraining(genome, Hartmann3());
  const SimulatedTraining short_run = SimulateTraining(genome, level1);
  EXPECT_NEAR(short_run.metrics.training_seconds(),
              0.25 * full.metrics.training_seconds(), 1e-12);
  EXPECT_GT(SimulatedExpectedError(genome, level1), Expected(genome));
  EXPECT_NE(short_run.model_file.find("step fraction: 0.25"),
            std::string::npos);

  // Level 2 continues for the other three quarters: as good as a full run
  // (within the 1.1 of every function-preserving inheritance), for 0.75 of
  // its time, and no better than a full run plus the parent's full run.
  SimulationOptions level2 = Hartmann3();
  level2.step_fraction = 0.75;
  level2.inheritance = SimulatedInheritance{genome, {}, 0.25};
  level2.inheritance->morphism.set_kind(v1::MORPHISM_KIND_CONTINUE);
  EXPECT_NEAR(SimulatedExpectedError(genome, level2),
              1.1 * Expected(genome), 1e-12 * Expected(genome));
  EXPECT_NEAR(SimulateTraining(genome, level2).metrics.training_seconds(),
              0.75 * full.metrics.training_seconds(), 1e-12);
  SimulationOptions from_full_parent = level2;
  from_full_parent.inheritance->parent_step_fraction = 1;
  EXPECT_LT(SimulatedExpectedError(genome, from_full_parent),
            SimulatedExpectedError(genome, level2));
}

TEST(SimulateTrainingTest, TheTimeLimitStopsARunAtTheLimit) {
  const v1::Genome genome = Mlp({32, 32}, v1::ACTIVATION_TANH, 3e-3, 3000);
  const SimulatedTraining full = SimulateTraining(genome, Hartmann3());
  EXPECT_FALSE(full.metrics.stopped_at_time_limit());

  // A quarter of the time trains a quarter of the steps.
  SimulationOptions limited = Hartmann3();
  limited.max_training_seconds = 0.25 * full.metrics.training_seconds();
  const SimulatedTraining stopped = SimulateTraining(genome, limited);
  EXPECT_TRUE(stopped.metrics.stopped_at_time_limit());
  EXPECT_EQ(stopped.metrics.training_seconds(), limited.max_training_seconds);
  SimulationOptions quarter = Hartmann3();
  quarter.step_fraction = 0.25;
  EXPECT_NEAR(SimulatedExpectedError(genome, limited),
              SimulatedExpectedError(genome, quarter),
              1e-12 * Expected(genome));
  EXPECT_GT(SimulatedExpectedError(genome, limited), Expected(genome));

  // A limit the run stays within changes nothing.
  limited.max_training_seconds = 2 * full.metrics.training_seconds();
  const SimulatedTraining within = SimulateTraining(genome, limited);
  EXPECT_FALSE(within.metrics.stopped_at_time_limit());
  EXPECT_EQ(within.metrics.training_seconds(), full.metrics.training_seconds());
  EXPECT_EQ(within.metrics.validation().max_abs_error(),
            full.metrics.validation().max_abs_error());
}

TEST(SimulateTrainingTest, FewerRowsAreCheaperAndWorse) {
  const v1::Genome genome = Mlp({32, 32}, v1::ACTIVATION_TANH, 3e-3, 3000);
  SimulationOptions quarter = Hartmann3();
  quarter.row_fraction = 0.25;
  const SimulatedTraining full = SimulateTraining(genome, Hartmann3());
  const SimulatedTraining subset = SimulateTraining(genome, quarter);
  EXPECT_NEAR(subset.metrics.training_seconds(),
              0.25 * full.metrics.training_seconds(), 1e-12);
  EXPECT_EQ(subset.metrics.training_row_count(),
            full.metrics.training_row_count() / 4);
  // Three inputs: the rows' spacing grows by 4^(1/3).
  EXPECT_NEAR(SimulatedExpectedError(genome, quarter),
              std::cbrt(4.0) * Expected(genome), 1e-12 * Expected(genome));
  EXPECT_NE(subset.model_file.find("row fraction: 0.25"), std::string::npos);
  // With a quarter of the steps as well, both savings multiply.
  quarter.step_fraction = 0.25;
  EXPECT_NEAR(SimulateTraining(genome, quarter).metrics.training_seconds(),
              0.0625 * full.metrics.training_seconds(), 1e-12);
}

TEST(SimulateTrainingTest, CheckpointHasTheGenomesShapeAndZeroWeights) {
  v1::Genome genome = WithStage(Mlp({16, 16}, v1::ACTIVATION_TANH), 8,
                                v1::ACTIVATION_SINE);
  genome.mutable_hidden_layers(1)->set_residual(true);
  const SimulatedTraining run = SimulateTraining(genome, Hartmann3());
  v1::NetworkWeights weights;
  ASSERT_TRUE(weights.ParseFromString(run.checkpoint));
  ASSERT_EQ(weights.stages_size(), 2);
  int64_t parameters = 0;
  for (const v1::StageWeights& stage : weights.stages()) {
    EXPECT_EQ(stage.x_mean_size(), 3);
    EXPECT_EQ(stage.x_std_size(), 3);
    EXPECT_EQ(stage.y_std_size(), 1);
    int64_t inputs = 3;
    for (const v1::LayerWeights& layer : stage.layers()) {
      EXPECT_EQ(layer.inputs(), inputs);
      EXPECT_EQ(layer.weight_size(), layer.inputs() * layer.outputs());
      EXPECT_EQ(layer.bias_size(), layer.outputs());
      for (double w : layer.weight()) EXPECT_EQ(w, 0.0);
      parameters += layer.weight_size() + layer.bias_size();
      inputs = layer.outputs();
    }
    EXPECT_EQ(stage.layers(stage.layers_size() - 1).activation(),
              v1::ACTIVATION_UNSPECIFIED);
  }
  EXPECT_TRUE(weights.stages(0).layers(1).residual());
  EXPECT_EQ(weights.stages(1).layers(0).activation(), v1::ACTIVATION_SINE);
  EXPECT_EQ(parameters, run.metrics.parameter_count());
}

}  // namespace
}  // namespace evonas
