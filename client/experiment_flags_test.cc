#include "client/experiment_flags.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace evonas::client {
namespace {

ExperimentFlags MinimalFlags() {
  ExperimentFlags flags;
  flags.dataset_id = "d1";
  flags.inputs = {"x1,x2"};
  flags.outputs = {"y"};
  flags.budget_candidates = 10;
  return flags;
}

TEST(ParseColumnListTest, SplitsTrimsAndJoinsRepeatedFlags) {
  absl::StatusOr<std::vector<std::string>> names =
      ParseColumnList("--inputs", {"x1, x2 ,x3", "x4"});
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_EQ(*names, (std::vector<std::string>{"x1", "x2", "x3", "x4"}));
}

TEST(ParseColumnListTest, RejectsEmptyDuplicateAndMissingNames) {
  EXPECT_EQ(ParseColumnList("--inputs", {"x1,,x2"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseColumnList("--inputs", {"x1,x1"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  const absl::Status none = ParseColumnList("--outputs", {}).status();
  EXPECT_EQ(none.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(none.message().find("--outputs"), std::string::npos);
}

TEST(ParseStrategyTest, KnowsRandomAndEvolution) {
  EXPECT_EQ(*ParseStrategy("random"), v1::STRATEGY_RANDOM);
  EXPECT_EQ(*ParseStrategy("lemonade"), v1::STRATEGY_LEMONADE);
  EXPECT_EQ(*ParseStrategy("NSGA2"), v1::STRATEGY_NSGA2);
  EXPECT_EQ(*ParseStrategy("evolution"), v1::STRATEGY_REGULARIZED_EVOLUTION);
  EXPECT_EQ(*ParseStrategy("Evolution"), v1::STRATEGY_REGULARIZED_EVOLUTION);
  const absl::Status unknown = ParseStrategy("bayes").status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.message().find("random, evolution"), std::string::npos);
}

TEST(BuildExperimentSpecTest, SetsTheStrategy) {
  ExperimentFlags flags = MinimalFlags();
  flags.strategy = "evolution";
  absl::StatusOr<v1::ExperimentSpec> spec = BuildExperimentSpec(flags);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->strategy(), v1::STRATEGY_REGULARIZED_EVOLUTION);
  flags.strategy = "annealing";
  EXPECT_EQ(BuildExperimentSpec(flags).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(BuildExperimentSpecTest, Classification) {
  ExperimentFlags flags = MinimalFlags();
  flags.task = "classification";
  flags.min_accuracy = 0.85;
  flags.objectives = {"error-rate,params"};
  absl::StatusOr<v1::ExperimentSpec> spec = BuildExperimentSpec(flags);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->task(), v1::TASK_CLASSIFICATION);
  EXPECT_EQ(spec->requirements().min_accuracy(), 0.85);
  ASSERT_EQ(spec->objectives_size(), 2);
  EXPECT_EQ(spec->objectives(0), v1::OBJECTIVE_VALIDATION_ERROR_RATE);

  ExperimentFlags regression_requirement = flags;
  regression_requirement.max_abs_error = 0.1;
  EXPECT_NE(BuildExperimentSpec(regression_requirement)
                .status()
                .message()
                .find("judged by --min-accuracy"),
            std::string::npos);
  ExperimentFlags two_labels = flags;
  two_labels.outputs = {"y,z"};
  EXPECT_EQ(BuildExperimentSpec(two_labels).status().code(),
            absl::StatusCode::kInvalidArgument);
  ExperimentFlags accuracy_for_regression = MinimalFlags();
  accuracy_for_regression.min_accuracy = 0.9;
  EXPECT_NE(BuildExperimentSpec(accuracy_for_regression)
                .status()
                .message()
                .find("--min-accuracy requires --task classification"),
            std::string::npos);
  ExperimentFlags unknown = MinimalFlags();
  unknown.task = "ranking";
  EXPECT_EQ(BuildExperimentSpec(unknown).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(BuildExperimentSpecTest, MinimalFlagsLeaveRequirementsUnset) {
  absl::StatusOr<v1::ExperimentSpec> spec = BuildExperimentSpec(MinimalFlags());
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->dataset_id(), "d1");
  EXPECT_EQ(spec->input_columns_size(), 2);
  EXPECT_EQ(spec->output_columns(0), "y");
  EXPECT_TRUE(spec->test_dataset_id().empty());
  EXPECT_FALSE(spec->requirements().has_max_abs_error());
  EXPECT_FALSE(spec->requirements().has_within_tolerance());
  EXPECT_FALSE(spec->requirements().has_max_parameters());
  EXPECT_EQ(spec->budget().max_candidates(), 10);
  EXPECT_EQ(spec->budget().max_wall_seconds(), 0);
  EXPECT_EQ(spec->seed(), 0u);
  EXPECT_EQ(spec->validation_fraction(), 0);
  EXPECT_EQ(spec->strategy(), v1::STRATEGY_RANDOM);
}

TEST(BuildExperimentSpecTest, CopiesEveryGivenFlag) {
  ExperimentFlags flags = MinimalFlags();
  flags.name = "beam";
  flags.test_dataset_id = "d2";
  flags.max_abs_error = 1e-3;
  flags.within_tolerance = 1e-2;
  flags.min_fraction_within = 0.95;
  flags.max_parameters = 5000;
  flags.max_model_bytes = 100000;
  flags.max_training_seconds = 60;
  flags.max_inference_latency_seconds = 0.001;
  flags.budget_seconds = 3600;
  flags.seed = 42;
  flags.validation_fraction = 0.25;

  absl::StatusOr<v1::ExperimentSpec> spec = BuildExperimentSpec(flags);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name(), "beam");
  EXPECT_EQ(spec->test_dataset_id(), "d2");
  const v1::Requirements& r = spec->requirements();
  EXPECT_DOUBLE_EQ(r.max_abs_error(), 1e-3);
  EXPECT_DOUBLE_EQ(r.within_tolerance(), 1e-2);
  EXPECT_DOUBLE_EQ(r.min_fraction_within(), 0.95);
  EXPECT_EQ(r.max_parameters(), 5000);
  EXPECT_EQ(r.max_model_bytes(), 100000);
  EXPECT_DOUBLE_EQ(r.max_training_seconds(), 60);
  EXPECT_DOUBLE_EQ(r.max_inference_latency_seconds(), 0.001);
  EXPECT_EQ(spec->budget().max_candidates(), 10);
  EXPECT_DOUBLE_EQ(spec->budget().max_wall_seconds(), 3600);
  EXPECT_EQ(spec->seed(), 42u);
  EXPECT_DOUBLE_EQ(spec->validation_fraction(), 0.25);
}

TEST(BuildExperimentSpecTest, RejectsOverlappingColumns) {
  ExperimentFlags flags = MinimalFlags();
  flags.outputs = {"x2"};
  EXPECT_EQ(BuildExperimentSpec(flags).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(BuildExperimentSpecTest, FractionWithinNeedsTolerance) {
  ExperimentFlags flags = MinimalFlags();
  flags.min_fraction_within = 0.9;
  const absl::Status status = BuildExperimentSpec(flags).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("--within-tolerance"), std::string::npos);
}

TEST(BuildExperimentSpecTest, NeedsABudget) {
  ExperimentFlags flags = MinimalFlags();
  flags.budget_candidates.reset();
  EXPECT_FALSE(BuildExperimentSpec(flags).ok());
  flags.budget_seconds = 60;
  EXPECT_TRUE(BuildExperimentSpec(flags).ok());
}

TEST(BuildExperimentSpecTest, NeedsDataset) {
  ExperimentFlags flags = MinimalFlags();
  flags.dataset_id.clear();
  EXPECT_FALSE(BuildExperimentSpec(flags).ok());
}

TEST(ParseObjectiveTest, KnowsEveryObjective) {
  int known = 0;
  for (int o = 1; v1::Objective_IsValid(o); ++o) ++known;
  std::set<int> seen;
  for (absl::string_view name : absl::StrSplit(ObjectiveNames(), ", ")) {
    absl::StatusOr<v1::Objective> objective = ParseObjective("--objectives", name);
    ASSERT_TRUE(objective.ok()) << name;
    seen.insert(*objective);
  }
  EXPECT_EQ(static_cast<int>(seen.size()), known);
  EXPECT_EQ(*ParseObjective("--objectives", " Params "),
            v1::OBJECTIVE_PARAMETER_COUNT);
  const absl::Status unknown = ParseObjective("--objectives", "beauty").status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.message().find("--objectives"), std::string::npos);
  EXPECT_NE(unknown.message().find("int8-error"), std::string::npos);
}

TEST(ParseFitnessWeightTest, ObjectiveEqualsNonNegativeWeight) {
  absl::StatusOr<v1::ObjectiveWeight> w = ParseFitnessWeight("flops=0.25");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->objective(), v1::OBJECTIVE_FLOPS);
  EXPECT_EQ(w->weight(), 0.25);
  for (const char* bad : {"flops", "flops=", "flops=-1", "flops=inf",
                          "flops=x", "speed=1"}) {
    const absl::Status status = ParseFitnessWeight(bad).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(status.message().find("--fitness-weight"), std::string::npos);
  }
}

TEST(BuildExperimentSpecTest, SearchFlags) {
  ExperimentFlags flags = MinimalFlags();
  flags.budget_candidates.reset();
  flags.max_worker_seconds = 7200;
  flags.stop_when_feasible = true;
  flags.strategy = "lemonade";
  flags.inherit = true;
  flags.inherit_step_fraction = 0.3;
  flags.lemonade_children = 32;
  flags.lemonade_random_fraction = 0.25;
  flags.multi_fidelity = true;
  flags.short_step_fraction = 0.2;
  flags.short_row_fraction = 0.5;
  flags.reduction_factor = 4;
  flags.refit = 3;
  flags.refit_step_fraction = 0.5;
  flags.objectives = {"error,params", "flops"};
  flags.fitness_weights = {"error=1", "params=0.5"};
  absl::StatusOr<v1::ExperimentSpec> spec = BuildExperimentSpec(flags);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->strategy(), v1::STRATEGY_LEMONADE);
  EXPECT_DOUBLE_EQ(spec->budget().max_worker_seconds(), 7200);
  EXPECT_TRUE(spec->budget().stop_when_feasible());
  EXPECT_TRUE(spec->inheritance().enabled());
  EXPECT_DOUBLE_EQ(spec->inheritance().step_fraction(), 0.3);
  EXPECT_EQ(spec->lemonade().children_per_proposal(), 32);
  ASSERT_TRUE(spec->lemonade().has_random_fraction());
  EXPECT_DOUBLE_EQ(spec->lemonade().random_fraction(), 0.25);
  EXPECT_TRUE(spec->multi_fidelity().enabled());
  EXPECT_DOUBLE_EQ(spec->multi_fidelity().short_step_fraction(), 0.2);
  EXPECT_DOUBLE_EQ(spec->multi_fidelity().short_row_fraction(), 0.5);
  EXPECT_EQ(spec->multi_fidelity().reduction_factor(), 4);
  EXPECT_EQ(spec->refit().front_members(), 3);
  EXPECT_EQ(spec->refit().start(), v1::REFIT_START_AUTO);
  EXPECT_DOUBLE_EQ(spec->refit().step_fraction(), 0.5);
  ASSERT_EQ(spec->objectives_size(), 3);
  EXPECT_EQ(spec->objectives(0), v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR);
  EXPECT_EQ(spec->objectives(1), v1::OBJECTIVE_PARAMETER_COUNT);
  EXPECT_EQ(spec->objectives(2), v1::OBJECTIVE_FLOPS);
  ASSERT_EQ(spec->fitness_weights_size(), 2);
  EXPECT_EQ(spec->fitness_weights(1).objective(),
            v1::OBJECTIVE_PARAMETER_COUNT);
  EXPECT_EQ(spec->fitness_weights(1).weight(), 0.5);

  // Unset: nothing set.
  spec = BuildExperimentSpec(MinimalFlags());
  ASSERT_TRUE(spec.ok());
  EXPECT_FALSE(spec->has_inheritance());
  EXPECT_FALSE(spec->has_lemonade());
  EXPECT_FALSE(spec->has_multi_fidelity());
  EXPECT_FALSE(spec->has_refit());
  EXPECT_EQ(spec->objectives_size(), 0);
  EXPECT_FALSE(spec->budget().stop_when_feasible());
}

TEST(BuildExperimentSpecTest, SearchSpaceFlags) {
  ExperimentFlags flags = MinimalFlags();
  flags.min_depth = 2;
  flags.max_depth = 3;
  flags.min_width = 16;
  flags.max_width = 64;
  flags.activations = {"tanh,SINE", "gelu"};
  flags.stage_activations = {"sine", "relu"};
  flags.min_adam_steps = 100;
  flags.max_adam_steps = 900;
  flags.lbfgs_steps = 50;
  flags.max_stages = 2;
  flags.allow_residual = true;
  flags.allow_layer_norm = true;
  flags.grow_stages = true;
  flags.search_training_extras = true;
  absl::StatusOr<v1::ExperimentSpec> spec = BuildExperimentSpec(flags);
  ASSERT_TRUE(spec.ok()) << spec.status();
  const v1::SearchSpace& space = spec->search_space();
  EXPECT_EQ(space.min_depth(), 2);
  EXPECT_EQ(space.max_depth(), 3);
  EXPECT_EQ(space.min_width(), 16);
  EXPECT_EQ(space.max_width(), 64);
  ASSERT_EQ(space.activations_size(), 3);
  EXPECT_EQ(space.activations(0), v1::ACTIVATION_TANH);
  EXPECT_EQ(space.activations(1), v1::ACTIVATION_SINE);
  EXPECT_EQ(space.activations(2), v1::ACTIVATION_GELU);
  EXPECT_THAT(space.residual_stage_activations(),
              testing::ElementsAre(v1::ACTIVATION_SINE, v1::ACTIVATION_RELU));
  EXPECT_EQ(space.min_adam_steps(), 100);
  EXPECT_EQ(space.max_adam_steps(), 900);
  EXPECT_EQ(space.lbfgs_steps(), 50);
  EXPECT_EQ(space.max_residual_stages(), 2);
  EXPECT_TRUE(space.allow_residual());
  EXPECT_TRUE(space.allow_layer_norm());
  EXPECT_TRUE(space.grow_stages());
  EXPECT_TRUE(space.search_training_extras());

  // Unset bounds stay 0: the controller fills its defaults.
  spec = BuildExperimentSpec(MinimalFlags());
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->search_space().max_width(), 0);
  EXPECT_EQ(spec->search_space().activations_size(), 0);

  flags.activations = {"tanh,swish"};
  spec = BuildExperimentSpec(flags);
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(spec.status().message().find(
                "--activations: unknown activation \"swish\""),
            absl::string_view::npos)
      << spec.status();

  flags.activations.clear();
  flags.stage_activations = {"sine,cosine"};
  spec = BuildExperimentSpec(flags);
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(spec.status().message().find(
                "--stage-activations: unknown activation \"cosine\""),
            absl::string_view::npos)
      << spec.status();
}

TEST(BuildExperimentSpecTest, ConvolutionalSpaceFlags) {
  ExperimentFlags flags = MinimalFlags();
  flags.min_conv_layers = 1;
  flags.max_conv_layers = 3;
  flags.min_channels = 8;
  flags.max_channels = 48;
  flags.max_pooling_layers = 2;
  flags.kernel_sizes = {"3, 5", "7"};
  absl::StatusOr<v1::ExperimentSpec> spec = BuildExperimentSpec(flags);
  ASSERT_TRUE(spec.ok()) << spec.status();
  const v1::SearchSpace& space = spec->search_space();
  EXPECT_EQ(space.min_conv_layers(), 1);
  EXPECT_EQ(space.max_conv_layers(), 3);
  EXPECT_EQ(space.min_channels(), 8);
  EXPECT_EQ(space.max_channels(), 48);
  EXPECT_EQ(space.max_pooling_layers(), 2);
  ASSERT_EQ(space.kernel_sizes_size(), 3);
  EXPECT_EQ(space.kernel_sizes(2), 7);

  flags.kernel_sizes = {"3,4"};
  spec = BuildExperimentSpec(flags);
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(spec.status().message().find(
                "--kernel-sizes: \"4\" is not one of 1, 3, 5, 7"),
            absl::string_view::npos)
      << spec.status();
}

TEST(BuildExperimentSpecTest, InitialGenomesFromTextOrJsonFiles) {
  const std::filesystem::path dir = ::testing::TempDir();
  const std::string text = (dir / "designed.textproto").string();
  const std::string json = (dir / "designed.json").string();
  const std::string broken = (dir / "broken.textproto").string();
  std::ofstream(text) << "# a design\nhidden_layers { width: 64 activation: "
                         "ACTIVATION_TANH }\ntraining { adam_steps: 1500 }\n";
  std::ofstream(json) << R"({"hidden_layers": [{"width": 12}],
                             "training": {"adam_steps": 300}})";
  std::ofstream(broken) << "hidden_layers { width: 64 }\nwidht: 3\n";
  ExperimentFlags flags = MinimalFlags();
  flags.initial_genome_files = {text, json};
  absl::StatusOr<v1::ExperimentSpec> spec = BuildExperimentSpec(flags);
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_EQ(spec->initial_genomes_size(), 2);
  EXPECT_EQ(spec->initial_genomes(0).hidden_layers(0).width(), 64);
  EXPECT_EQ(spec->initial_genomes(0).training().adam_steps(), 1500);
  EXPECT_EQ(spec->initial_genomes(1).hidden_layers(0).width(), 12);

  flags.initial_genome_files = {broken};
  spec = BuildExperimentSpec(flags);
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(spec.status().message().find(
                "--initial-genome " + broken +
                ": not a Genome in protobuf text format: line 2 column 6: "),
            absl::string_view::npos)
      << spec.status();
  EXPECT_NE(spec.status().message().find("no field named \"widht\""),
            absl::string_view::npos);
  flags.initial_genome_files = {(dir / "missing.textproto").string()};
  EXPECT_NE(BuildExperimentSpec(flags).status().message().find(
                "cannot read the file"),
            absl::string_view::npos);
}

TEST(BuildExperimentSpecTest, Precisions) {
  ExperimentFlags flags = MinimalFlags();
  flags.precisions = {"float32, float64"};
  absl::StatusOr<v1::ExperimentSpec> spec = BuildExperimentSpec(flags);
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_EQ(spec->search_space().precisions_size(), 2);
  EXPECT_EQ(spec->search_space().precisions(0), v1::PRECISION_FLOAT32);
  EXPECT_EQ(spec->search_space().precisions(1), v1::PRECISION_FLOAT64);

  flags.precisions = {"float16"};
  EXPECT_EQ(BuildExperimentSpec(flags).status().message(),
            "--precisions: \"float16\" is not float64 or float32");
}

TEST(BuildExperimentSpecTest, SearchFlagsThatContradict) {
  auto message = [](const ExperimentFlags& flags) {
    return std::string(BuildExperimentSpec(flags).status().message());
  };
  ExperimentFlags flags = MinimalFlags();
  flags.inherit = true;  // with random search
  EXPECT_NE(message(flags).find("--inherit"), std::string::npos);
  flags.strategy = "nsga2";
  EXPECT_TRUE(BuildExperimentSpec(flags).ok());
  flags.inherit = false;
  flags.inherit_step_fraction = 0.5;
  EXPECT_NE(message(flags).find("--inherit-step-fraction requires --inherit"),
            std::string::npos);
  flags.inherit_step_fraction.reset();
  flags.reduction_factor = 4;
  EXPECT_NE(message(flags).find("require --multi-fidelity"), std::string::npos);
  flags.reduction_factor.reset();
  flags.short_step_fraction = 0.5;
  EXPECT_NE(message(flags).find("require --multi-fidelity"), std::string::npos);
  flags.short_step_fraction.reset();
  flags.short_row_fraction = 0.5;
  EXPECT_NE(message(flags).find("require --multi-fidelity"), std::string::npos);
  flags.short_row_fraction.reset();
  flags.lemonade_children = 8;
  EXPECT_NE(message(flags).find("--lemonade-children"), std::string::npos);
  flags.lemonade_children.reset();
  flags.lemonade_random_fraction = 0.5;
  EXPECT_NE(message(flags).find("--lemonade-random-fraction"),
            std::string::npos);
  flags.lemonade_random_fraction.reset();
  flags.refit_start = "scratch";
  EXPECT_NE(message(flags).find("require --refit N"), std::string::npos);
  flags.refit = 2;
  EXPECT_EQ(BuildExperimentSpec(flags)->refit().start(),
            v1::REFIT_START_SCRATCH);
  flags.refit_step_fraction = 0.5;
  EXPECT_NE(message(flags).find("from scratch they train all steps"),
            std::string::npos);
  flags.refit_start = "Continue";
  EXPECT_EQ(BuildExperimentSpec(flags)->refit().start(),
            v1::REFIT_START_CONTINUE);
  flags.refit_start = "later";
  EXPECT_NE(message(flags).find("is not auto, continue or scratch"),
            std::string::npos);
  flags.refit_start.clear();
  flags.refit_step_fraction.reset();
  flags.refit.reset();
  flags.objectives = {"error,error"};
  EXPECT_NE(message(flags).find("given twice"), std::string::npos);
  flags.objectives = {"error,"};
  EXPECT_NE(message(flags).find("--objectives"), std::string::npos);
  flags.objectives.clear();
  flags.fitness_weights = {"error=1", "ERROR=2"};
  EXPECT_NE(message(flags).find("--fitness-weight"), std::string::npos);
}

TEST(BuildExperimentSpecTest, WorkerSecondsAreABudget) {
  ExperimentFlags flags = MinimalFlags();
  flags.budget_candidates.reset();
  flags.stop_when_feasible = true;  // not a limit on its own
  EXPECT_NE(std::string(BuildExperimentSpec(flags).status().message())
                .find("--max-worker-seconds"),
            std::string::npos);
  flags.max_worker_seconds = 600;
  EXPECT_TRUE(BuildExperimentSpec(flags).ok());
}

}  // namespace
}  // namespace evonas::client
