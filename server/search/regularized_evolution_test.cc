#include "server/search/regularized_evolution.h"

#include <set>
#include <string>
#include <vector>

#include "common/genome.h"
#include "gtest/gtest.h"
#include "server/search/mutation.h"

namespace evonas::search {
namespace {

v1::SearchSpace Space() { return NormalizeSearchSpace({}).value(); }

v1::EvolutionSettings Settings(int population, int tournament) {
  v1::EvolutionSettings settings;
  settings.set_population_size(population);
  settings.set_tournament_size(tournament);
  return settings;
}

v1::Genome Mlp(std::vector<int> widths) {
  v1::Genome genome;
  for (int width : widths) {
    v1::DenseLayer* layer = genome.add_hidden_layers();
    layer->set_width(width);
    layer->set_activation(v1::ACTIVATION_TANH);
  }
  genome.mutable_training()->set_learning_rate(3e-3);
  genome.mutable_training()->set_adam_steps(1000);
  genome.mutable_training()->set_lbfgs_steps(200);
  return genome;
}

v1::Candidate Succeeded(int64_t sequence, const v1::Genome& genome,
                        double max_abs_error, int64_t parameters = 1000) {
  v1::Candidate c;
  c.set_sequence(sequence);
  *c.mutable_genome() = genome;
  c.set_state(v1::CANDIDATE_STATE_SUCCEEDED);
  c.mutable_metrics()->mutable_validation()->set_max_abs_error(max_abs_error);
  c.mutable_metrics()->set_parameter_count(parameters);
  return c;
}

// The clamped genome `child` was mutated from, among `parents`: the one
// that is a single mutation away (same depth and one gene changed, or one
// layer added or removed). Empty if none or several.
std::string ParentOf(const v1::Genome& child,
                     const std::vector<v1::Genome>& parents) {
  std::set<std::string> found;
  for (const v1::Genome& raw : parents) {
    const v1::Genome parent = ClampToSpace(raw, Space());
    const int dp = parent.hidden_layers_size();
    const int dc = child.hidden_layers_size();
    bool near = false;
    if (dp == dc) {
      int changes = 0;
      for (int i = 0; i < dp; ++i) {
        changes += parent.hidden_layers(i).SerializeAsString() !=
                   child.hidden_layers(i).SerializeAsString();
      }
      changes +=
          parent.training().learning_rate() != child.training().learning_rate();
      changes +=
          parent.training().adam_steps() != child.training().adam_steps();
      near = changes == 1;
    } else if (std::abs(dp - dc) == 1) {
      const v1::Genome& longer = dp > dc ? parent : child;
      const v1::Genome& shorter = dp > dc ? child : parent;
      for (int p = 0; p < longer.hidden_layers_size() && !near; ++p) {
        v1::Genome without = longer;
        without.mutable_hidden_layers()->erase(
            without.mutable_hidden_layers()->begin() + p);
        near = GenomeKey(without) == GenomeKey(shorter);
      }
    }
    if (near) found.insert(GenomeKey(raw));
  }
  return found.size() == 1 ? *found.begin() : "";
}

// Fitness{dominated_by, feasible, violation, max_abs_error, sequence}.
TEST(FitterTest, DominationFirstThenFeasibleViolationError) {
  const Fitness feasible_bad{0, true, 0, 1.0, 5};
  const Fitness feasible_good{0, true, 0, 0.1, 6};
  const Fitness infeasible_small{0, false, 0.5, 0.001, 1};
  const Fitness infeasible_large{0, false, 3.0, 0.0001, 2};
  EXPECT_TRUE(Fitter(feasible_good, feasible_bad));
  EXPECT_TRUE(Fitter(feasible_bad, infeasible_small));
  EXPECT_FALSE(Fitter(infeasible_small, feasible_bad));
  EXPECT_TRUE(Fitter(infeasible_small, infeasible_large));
  // Equal violation: error decides; equal everything: the older one.
  EXPECT_TRUE(Fitter({0, false, 1, 0.1, 9}, {0, false, 1, 0.2, 3}));
  EXPECT_TRUE(Fitter({0, true, 0, 0.1, 3}, {0, true, 0, 0.1, 4}));
  EXPECT_FALSE(Fitter({0, true, 0, 0.1, 4}, {0, true, 0, 0.1, 4}));
  // Fewer dominators in the population come first, whatever the error.
  EXPECT_TRUE(Fitter({0, true, 0, 0.5, 3}, {1, true, 0, 0.1, 4}));
}

TEST(FitnessOfTest, UsesTheRequirements) {
  v1::Requirements requirements;
  requirements.set_max_abs_error(0.01);
  requirements.set_max_parameters(500);
  const Fitness f = FitnessOf(Succeeded(4, Mlp({8}), 0.02, 1000), requirements);
  EXPECT_FALSE(f.feasible);
  EXPECT_DOUBLE_EQ(f.violation, 1.0 + 1.0);  // error 2x, parameters 2x
  EXPECT_EQ(f.max_abs_error, 0.02);
  EXPECT_EQ(f.sequence, 4);
  EXPECT_TRUE(
      FitnessOf(Succeeded(5, Mlp({8}), 0.001, 100), requirements).feasible);
}

TEST(RegularizedEvolutionTest, SamplesAtRandomUntilThePopulationIsFull) {
  RegularizedEvolution evolution(Space(), Settings(5, 2), {}, 7);
  RandomSearch random(Space(), 7);
  std::vector<v1::Candidate> finished;
  for (int n = 0; n < 4; ++n) {
    finished.push_back(Succeeded(n, random.Sample(n), 0.1));
  }
  // A failed candidate does not count towards the population.
  v1::Candidate failed = finished.back();
  failed.set_sequence(4);
  failed.set_state(v1::CANDIDATE_STATE_FAILED);
  finished.push_back(failed);
  for (int64_t n = 5; n < 20; ++n) {
    EXPECT_EQ(GenomeKey(evolution.Propose(n, finished).genome),
              GenomeKey(random.Propose(n, finished).genome));
  }
}

TEST(RegularizedEvolutionTest, MutatesTheWinnerOfTheTournament) {
  // Tournament = population: the parent is always the fittest member.
  RegularizedEvolution evolution(Space(), Settings(3, 3), {}, 1);
  const std::vector<v1::Genome> genomes = {Mlp({8}), Mlp({100, 100, 100}),
                                           Mlp({40, 40})};
  const std::vector<v1::Candidate> finished = {Succeeded(0, genomes[0], 0.5),
                                               Succeeded(1, genomes[1], 0.01),
                                               Succeeded(2, genomes[2], 0.2)};
  int checked = 0;
  for (int64_t n = 3; n < 60; ++n) {
    const v1::Genome child = evolution.Propose(n, finished).genome;
    ASSERT_TRUE(ValidateGenome(child).ok());
    const std::string parent = ParentOf(child, genomes);
    if (parent.empty()) continue;  // ambiguous
    EXPECT_EQ(parent, GenomeKey(genomes[1])) << DescribeGenome(child);
    ++checked;
  }
  EXPECT_GT(checked, 40);
}

TEST(RegularizedEvolutionTest, DominatedMembersNeverWin) {
  // C is more accurate than B but dominated by A (more accurate and
  // smaller); B is on the front. With tournaments of two, C never wins,
  // and B wins whenever it meets C.
  RegularizedEvolution evolution(Space(), Settings(3, 2), {}, 5);
  const std::vector<v1::Genome> genomes = {Mlp({100, 100, 100}), Mlp({8}),
                                           Mlp({40, 40})};
  const std::vector<v1::Candidate> finished = {
      Succeeded(0, genomes[0], 0.01, 100),    // A
      Succeeded(1, genomes[1], 0.5, 10),      // B
      Succeeded(2, genomes[2], 0.05, 5000)};  // C
  std::set<std::string> parents;
  for (int64_t n = 3; n < 80; ++n) {
    const std::string parent =
        ParentOf(evolution.Propose(n, finished).genome, genomes);
    EXPECT_NE(parent, GenomeKey(genomes[2]));
    if (!parent.empty()) parents.insert(parent);
  }
  EXPECT_EQ(parents, (std::set<std::string>{GenomeKey(genomes[0]),
                                            GenomeKey(genomes[1])}));
}

TEST(RegularizedEvolutionTest, FeasibilityBeatsError) {
  v1::Requirements requirements;
  requirements.set_max_parameters(2000);
  RegularizedEvolution evolution(Space(), Settings(2, 2), requirements, 1);
  const std::vector<v1::Genome> genomes = {Mlp({100, 100, 100}), Mlp({8})};
  const std::vector<v1::Candidate> finished = {
      Succeeded(0, genomes[0], 0.001, 20701),  // accurate, too large
      Succeeded(1, genomes[1], 0.3, 41)};      // poor, but feasible
  for (int64_t n = 2; n < 30; ++n) {
    const std::string parent =
        ParentOf(evolution.Propose(n, finished).genome, genomes);
    if (!parent.empty()) EXPECT_EQ(parent, GenomeKey(genomes[1]));
  }
}

TEST(RegularizedEvolutionTest, OldCandidatesAgeOut) {
  RegularizedEvolution evolution(Space(), Settings(3, 3), {}, 2);
  // The best candidate ever (sequence 0) has left the population window.
  const std::vector<v1::Candidate> finished = {
      Succeeded(0, Mlp({8}), 1e-9),
      Succeeded(1, Mlp({100, 100, 100, 100}), 0.3),
      Succeeded(2, Mlp({90, 90, 90, 90}), 0.2),
      Succeeded(3, Mlp({80, 80, 80, 80}), 0.1)};
  for (int64_t n = 4; n < 40; ++n) {
    // Mutations of a 4-layer network have 3 or 4 layers; of Mlp({8}) 1 or 2.
    EXPECT_GE(evolution.Propose(n, finished).genome.hidden_layers_size(), 3);
  }
}

TEST(RegularizedEvolutionTest, DeterministicGivenSeedSequenceAndResults) {
  RandomSearch random(Space(), 3);
  std::vector<v1::Candidate> finished;
  for (int n = 0; n < 30; ++n) {
    finished.push_back(Succeeded(n, random.Sample(n), 0.01 * (n % 7 + 1)));
  }
  RegularizedEvolution a(Space(), Settings(20, 5), {}, 11);
  RegularizedEvolution b(Space(), Settings(20, 5), {}, 11);
  RegularizedEvolution c(Space(), Settings(20, 5), {}, 12);
  // Call order and instance do not matter; the finished order does not
  // either (the population is chosen by sequence).
  std::vector<v1::Candidate> reversed(finished.rbegin(), finished.rend());
  const std::string a40 = GenomeKey(a.Propose(40, finished).genome);
  b.Propose(41, finished);
  EXPECT_EQ(GenomeKey(b.Propose(40, reversed).genome), a40);
  std::set<std::string> keys;
  int differing = 0;
  for (int64_t n = 30; n < 60; ++n) {
    const v1::Genome genome = a.Propose(n, finished).genome;
    EXPECT_TRUE(ValidateGenome(genome).ok());
    keys.insert(GenomeKey(genome));
    differing += GenomeKey(genome) != GenomeKey(c.Propose(n, finished).genome);
  }
  EXPECT_GT(keys.size(), 20u);
  EXPECT_GT(differing, 15);
}

TEST(RegularizedEvolutionTest, InheritsThroughMorphismsOnlyWhenEnabled) {
  RandomSearch random(Space(), 4);
  std::vector<v1::Candidate> finished;
  std::set<std::string> ids;
  for (int n = 0; n < 20; ++n) {
    finished.push_back(Succeeded(n, random.Sample(n), 0.01 * (n % 5 + 1)));
    finished.back().set_id("c" + std::to_string(n));
    ids.insert(finished.back().id());
  }
  RegularizedEvolution plain(Space(), Settings(20, 5), {}, 7);
  RegularizedEvolution inheriting(Space(), Settings(20, 5), {}, 7, {}, {},
                                  /*inherit=*/true);
  int inherited = 0, scratch = 0;
  for (int64_t n = 20; n < 120; ++n) {
    const Proposal p = plain.Propose(n, finished);
    const Proposal q = inheriting.Propose(n, finished);
    EXPECT_TRUE(p.parent_id.empty());
    EXPECT_EQ(GenomeKey(p.genome), GenomeKey(q.genome));  // same child
    if (q.parent_id.empty()) {
      EXPECT_EQ(q.morphism.kind(), v1::MORPHISM_KIND_UNSPECIFIED);
      ++scratch;
    } else {
      EXPECT_TRUE(ids.count(q.parent_id));
      EXPECT_NE(q.morphism.kind(), v1::MORPHISM_KIND_UNSPECIFIED);
      ++inherited;
    }
  }
  EXPECT_GT(inherited, 30);  // widen, narrow, training genes
  EXPECT_GT(scratch, 10);    // add or remove a layer, activation
}

TEST(RegularizedEvolutionTest, FitnessWeightsPickTheCheapParent) {
  // Equally dominated (a front of two): the weights decide the tournament.
  std::vector<v1::Candidate> finished = {
      Succeeded(0, Mlp({100, 100}), 0.001, 20000),
      Succeeded(1, Mlp({8}), 0.1, 50)};
  google::protobuf::RepeatedPtrField<v1::ObjectiveWeight> weights;
  weights.Add()->set_objective(v1::OBJECTIVE_PARAMETER_COUNT);
  weights.Mutable(0)->set_weight(1);
  RegularizedEvolution cheap(Space(), Settings(2, 2), {}, 1,
                             {v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR,
                              v1::OBJECTIVE_PARAMETER_COUNT},
                             weights);
  RegularizedEvolution accurate(Space(), Settings(2, 2), {}, 1,
                                {v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR,
                                 v1::OBJECTIVE_PARAMETER_COUNT});
  for (int64_t n = 2; n < 30; ++n) {
    EXPECT_LE(cheap.Propose(n, finished).genome.hidden_layers_size(), 2);
    EXPECT_LE(cheap.Propose(n, finished).genome.hidden_layers(0).width(), 16);
    EXPECT_GE(accurate.Propose(n, finished).genome.hidden_layers(0).width(),
              50);
  }
}

}  // namespace
}  // namespace evonas::search
