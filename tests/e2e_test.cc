// End to end: a real evonas-controller and evonas-worker as processes on a
// loopback port, over TLS with bearer tokens (a dev-cert pair, a client and a
// worker token made by the admin commands), driven through the evonas CLI.
// A model downloaded through the CLI must reproduce, in Debian's PyTorch, the
// error the front reports. Calls without a token, with the wrong kind of
// token, without TLS, or from another tenant are refused. A Fashion-MNIST
// classification runs the same way.

#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/genome.h"
#include "evonas/v1/evonas_service.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/process.h"

namespace evonas {
namespace {
namespace fs = std::filesystem;
using testutil::Process;
using testutil::ReadFile;

struct CommandResult {
  int exit_code;
  std::string output;
};

CommandResult RunCommand(const std::string& command) {
  CommandResult result{-1, ""};
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    result.output.append(buffer, n);
  }
  int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

template <typename Message>
Message ParseJson(const std::string& json) {
  Message message;
  auto status = google::protobuf::util::JsonStringToMessage(json, &message);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << json;
  return message;
}

// y = sin(3 x1) + x2 * x3 on [0,1]^3, 400 rows.
void WriteSmoothCsv(const fs::path& path) {
  std::ofstream out(path);
  out.precision(17);
  out << "x1,x2,x3,y\n";
  for (int i = 0; i < 400; ++i) {
    double x1 = std::fmod(i * 0.6180339887, 1.0);
    double x2 = std::fmod(i * 0.7548776662, 1.0);
    double x3 = std::fmod(i * 0.5698402910, 1.0);
    out << x1 << "," << x2 << "," << x3 << ","
        << std::sin(3 * x1) + x2 * x3 << "\n";
  }
}

// The loopback address of a controller started with --port-file, once it
// serves; empty when it did not write the file within 30 s.
std::string ControllerAddress(const fs::path& port_file) {
  if (!testutil::WaitFor([&] { return fs::exists(port_file); },
                         std::chrono::seconds(30))) {
    return "";
  }
  return "127.0.0.1:" + std::to_string(std::stoi(ReadFile(port_file)));
}

bool PythonTorchAvailable() {
  return RunCommand("/usr/bin/python3 -c 'import torch' 2>/dev/null")
             .exit_code == 0;
}

TEST(EndToEndTest, SearchTrainFrontDownload) {
  const fs::path dir = fs::path(::testing::TempDir()) / "evonas-e2e";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path port_file = dir / "port";
  const std::string db = "--db=" + (dir / "evonas.db").string();
  const std::string admin = std::string(EVONAS_CONTROLLER_BIN) + " ";
  ASSERT_EQ(RunCommand(admin + "dev-cert --out " + (dir / "certs").string())
                .exit_code,
            0);
  const std::string ca = (dir / "certs" / "cert.pem").string();
  auto create_token = [&](const std::string& args) {
    CommandResult token = RunCommand(admin + "token create " + db + " " + args);
    EXPECT_EQ(token.exit_code, 0);
    EXPECT_EQ(token.output.back(), '\n');
    return token.output.substr(0, token.output.size() - 1);
  };
  const std::string acme_token = create_token("--kind client --tenant acme");
  const std::string beta_token = create_token("--kind client --tenant beta");
  const std::string worker_token = create_token("--kind worker");

  Process controller({EVONAS_CONTROLLER_BIN, "--listen=127.0.0.1:0",
                      "--port-file=" + port_file.string(), db,
                      "--data-dir=" + (dir / "data").string(),
                      "--heartbeat-seconds=1", "--tls-cert=" + ca,
                      "--tls-key=" + (dir / "certs" / "key.pem").string()},
                     dir / "controller.log");
  const std::string address = ControllerAddress(port_file);
  ASSERT_FALSE(address.empty()) << ReadFile(dir / "controller.log");
  Process worker({EVONAS_WORKER_BIN, "--controller=" + address,
                  "--cache-dir=" + (dir / "cache").string(), "--tls-ca=" + ca,
                  "--token=" + worker_token},
                 dir / "worker.log");

  // The CLI as each caller: tokens from the environment, as users pass them.
  const std::string cli_args = std::string(EVONAS_CLI_BIN) + " --controller " +
                               address + " --tls-ca " + ca + " --output json ";
  const std::string cli = "EVONAS_TOKEN=" + acme_token + " " + cli_args;
  const std::string beta_cli = "EVONAS_TOKEN=" + beta_token + " " + cli_args;
  WriteSmoothCsv(dir / "smooth.csv");
  CommandResult upload =
      RunCommand(cli + "dataset upload " + (dir / "smooth.csv").string());
  ASSERT_EQ(upload.exit_code, 0) << upload.output;
  auto dataset = ParseJson<v1::Dataset>(upload.output);
  EXPECT_EQ(dataset.row_count(), 400);

  // A consultant's design goes first; the search proposes the rest.
  const fs::path design = dir / "design.textproto";
  std::ofstream(design) << "hidden_layers { width: 16 activation: "
                           "ACTIVATION_TANH }\ntraining { learning_rate: "
                           "0.01 adam_steps: 300 lbfgs_steps: 50 }\n";
  CommandResult create = RunCommand(
      cli + "experiment create --dataset " + dataset.id() +
      " --inputs x1,x2,x3 --outputs y --max-abs-error 0.5"
      " --within-tolerance 1e-2 --min-fraction-within 0.01"
      " --budget-candidates 3 --seed 7 --refit 1 --judging-fraction 0.25"
      " --initial-genome " +
      design.string());
  ASSERT_EQ(create.exit_code, 0) << create.output;
  auto experiment = ParseJson<v1::Experiment>(create.output);
  EXPECT_EQ(experiment.spec().judging_fraction(), 0.25);

  CommandResult wait = RunCommand(cli + "experiment wait " + experiment.id() +
                                  " --poll-seconds 0.5 --timeout-seconds 600");
  ASSERT_EQ(wait.exit_code, 0) << wait.output << ReadFile(dir / "worker.log");
  CommandResult status = RunCommand(cli + "experiment status " + experiment.id());
  experiment = ParseJson<v1::Experiment>(status.output);
  EXPECT_EQ(experiment.state(), v1::EXPERIMENT_STATE_COMPLETED);
  // Three searched, and the best of them trained again on all rows.
  EXPECT_EQ(experiment.counts().succeeded(), 4)
      << status.output << ReadFile(dir / "worker.log");
  CommandResult first_candidates =
      RunCommand(cli + "experiment candidates " + experiment.id());
  ASSERT_EQ(first_candidates.exit_code, 0) << first_candidates.output;
  const auto trained =
      ParseJson<v1::ListCandidatesResponse>(first_candidates.output);
  ASSERT_EQ(trained.candidates_size(), 4);
  const v1::Genome& designed = trained.candidates(0).genome();
  EXPECT_EQ(trained.candidates(0).sequence(), 0);
  ASSERT_EQ(designed.hidden_layers_size(), 1) << first_candidates.output;
  EXPECT_EQ(designed.hidden_layers(0).width(), 16);
  EXPECT_EQ(designed.training().adam_steps(), 300);
  EXPECT_EQ(designed.training().lbfgs_steps(), 50);
  // Searched candidates are judged on rows they neither trained on nor
  // chose weights on; every row is in exactly one of the three sets.
  for (const v1::Candidate& c : trained.candidates()) {
    if (c.evaluation_level() == v1::EVALUATION_LEVEL_REFIT) continue;
    const v1::Metrics& m = c.metrics();
    ASSERT_TRUE(m.has_judging()) << c.id();
    EXPECT_GT(m.judging().row_count(), 40) << c.id();
    EXPECT_EQ(m.training_row_count() + m.validation().row_count() +
                  m.judging().row_count(),
              400)
        << c.id();
  }

  CommandResult front_out =
      RunCommand(cli + "experiment front " + experiment.id());
  ASSERT_EQ(front_out.exit_code, 0) << front_out.output;
  auto front = ParseJson<v1::ParetoFront>(front_out.output);
  ASSERT_GE(front.candidates_size(), 1);
  const v1::Candidate& best = front.candidates(0);
  EXPECT_EQ(best.state(), v1::CANDIDATE_STATE_SUCCEEDED);
  // A smooth function and the default search space: far better than the
  // constant predictor (whose error is of order 1).
  EXPECT_LT(best.metrics().validation().max_abs_error(), 0.05);
  EXPECT_TRUE(front.has_feasible());
  ASSERT_EQ(front.refits_size(), 1) << front_out.output;
  const v1::Candidate& refit = front.refits(0);
  EXPECT_EQ(refit.refit_of(), best.id());
  EXPECT_EQ(refit.evaluation_level(), v1::EVALUATION_LEVEL_REFIT);
  EXPECT_EQ(refit.state(), v1::CANDIDATE_STATE_SUCCEEDED)
      << refit.failure_reason();
  EXPECT_EQ(refit.metrics().training_row_count(), 400);
  EXPECT_FALSE(refit.metrics().has_judging());
  EXPECT_EQ(refit.metrics().validation().row_count(), 400);
  EXPECT_LT(refit.metrics().validation().max_abs_error(), 0.05);
  // The worker calibrated at start-up and its first LeaseWork carried the
  // table, so every proposal has an estimated latency, of the order of the
  // one measured after training (bench/latency_bench measures how close).
  EXPECT_NE(ReadFile(dir / "worker.log").find("event=latency_calibrated"),
            std::string::npos);
  for (const v1::Candidate& c : front.candidates()) {
    const double estimate = c.cost().estimated_latency_seconds();
    const double measured = c.metrics().inference_latency_seconds();
    EXPECT_GT(estimate, measured / 5) << c.id() << " measured " << measured;
    EXPECT_LT(estimate, measured * 5) << c.id() << " measured " << measured;
  }

  // Multi-fidelity: with eta 2, the better of the first two short runs is
  // promoted and continues from its own weights for the rest of its steps.
  // In float32: the promoted run continues from a float32 checkpoint.
  CommandResult halving = RunCommand(
      cli + "experiment create --dataset " + dataset.id() +
      " --inputs x1,x2,x3 --outputs y --budget-candidates 4 --seed 8"
      " --multi-fidelity --short-step-fraction 0.25 --reduction-factor 2"
      " --precisions float32");
  ASSERT_EQ(halving.exit_code, 0) << halving.output;
  const auto halving_experiment = ParseJson<v1::Experiment>(halving.output);
  CommandResult halving_wait =
      RunCommand(cli + "experiment wait " + halving_experiment.id() +
                 " --poll-seconds 0.5 --timeout-seconds 600");
  ASSERT_EQ(halving_wait.exit_code, 0)
      << halving_wait.output << ReadFile(dir / "worker.log");
  CommandResult listed =
      RunCommand(cli + "experiment candidates " + halving_experiment.id());
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  const auto candidates = ParseJson<v1::ListCandidatesResponse>(listed.output);
  ASSERT_EQ(candidates.candidates_size(), 4) << listed.output;
  std::map<std::string, v1::Candidate> by_id;
  for (const v1::Candidate& c : candidates.candidates()) by_id[c.id()] = c;
  int promotions = 0;
  for (const v1::Candidate& c : candidates.candidates()) {
    EXPECT_EQ(c.state(), v1::CANDIDATE_STATE_SUCCEEDED) << c.failure_reason();
    EXPECT_EQ(c.genome().precision(), v1::PRECISION_FLOAT32) << c.id();
    if (c.evaluation_level() != v1::EVALUATION_LEVEL_FULL) {
      EXPECT_EQ(c.evaluation_level(), v1::EVALUATION_LEVEL_SHORT);
      continue;
    }
    ++promotions;
    const v1::Candidate& short_run = by_id.at(c.promoted_from());
    EXPECT_EQ(c.parent_id(), short_run.id());
    EXPECT_EQ(c.genome().SerializeAsString(),
              short_run.genome().SerializeAsString());
    // Continued training: no worse than where the short run stopped (the
    // worker keeps the best validation weights).
    EXPECT_LE(c.metrics().validation().max_abs_error(),
              short_run.metrics().validation().max_abs_error() * 1.0001)
        << c.id();
  }
  EXPECT_GE(promotions, 1) << listed.output;
  EXPECT_NE(ReadFile(dir / "worker.log").find("step_fraction=0.75"),
            std::string::npos);

  const fs::path model = dir / "best.pt";
  CommandResult download = RunCommand(cli + "model download " + best.id() +
                                      " -o " + model.string());
  ASSERT_EQ(download.exit_code, 0) << download.output;
  ASSERT_EQ(static_cast<int64_t>(fs::file_size(model)),
            best.metrics().model_bytes());

  // Unknown ids are refused with NOT_FOUND and exit code 4.
  CommandResult missing = RunCommand(cli + "experiment status exp-nope 2>&1");
  EXPECT_EQ(missing.exit_code, 4);
  EXPECT_NE(missing.output.find("NOT_FOUND"), std::string::npos)
      << missing.output;

  // Another tenant gets the same answer for acme's experiment as for one
  // that does not exist, and lists nothing of acme's.
  CommandResult foreign =
      RunCommand(beta_cli + "experiment status " + experiment.id() + " 2>&1");
  EXPECT_EQ(foreign.exit_code, 4);
  CommandResult absent = RunCommand(beta_cli + "experiment status " +
                                    experiment.id() + "x 2>&1");
  std::string expected = foreign.output;
  const size_t at = expected.find(experiment.id());
  ASSERT_NE(at, std::string::npos) << foreign.output;
  expected.insert(at + experiment.id().size(), "x");
  EXPECT_EQ(absent.output, expected);
  CommandResult beta_list = RunCommand(beta_cli + "experiment list");
  EXPECT_EQ(beta_list.exit_code, 0);
  EXPECT_EQ(beta_list.output.find(experiment.id()), std::string::npos)
      << beta_list.output;

  // No token, the wrong kind of token, no TLS: refused with exit code 7
  // (3 for the TLS mismatch: no connection).
  CommandResult no_token =
      RunCommand("EVONAS_TOKEN= " + cli_args + "experiment list 2>&1");
  EXPECT_EQ(no_token.exit_code, 7) << no_token.output;
  EXPECT_NE(no_token.output.find("UNAUTHENTICATED"), std::string::npos);
  CommandResult worker_as_client = RunCommand(
      "EVONAS_TOKEN=" + worker_token + " " + cli_args + "experiment list 2>&1");
  EXPECT_EQ(worker_as_client.exit_code, 7) << worker_as_client.output;
  EXPECT_NE(worker_as_client.output.find("PERMISSION_DENIED"),
            std::string::npos);
  CommandResult plaintext =
      RunCommand(cli + "--plaintext experiment list 2>&1");
  EXPECT_EQ(plaintext.exit_code, 3) << plaintext.output;

  if (PythonTorchAvailable()) {
    // Recompute the validation rows from the documented split and the max
    // error of the downloaded model in Debian's PyTorch.
    const fs::path script = dir / "check.py";
    std::ofstream(script) << R"py(
import csv, sys, torch
M = (1 << 64) - 1
def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)
path, model_path, seed, fraction = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
rows = list(csv.reader(open(path)))[1:]
val = [r for i, r in enumerate(rows) if splitmix64((seed + i) & M) / 2.0**64 < fraction]
x = torch.tensor([[float(v) for v in r[:3]] for r in val], dtype=torch.float64)
y = torch.tensor([[float(r[3])] for r in val], dtype=torch.float64)
m = torch.jit.load(model_path)
print(repr((m(x) - y).abs().max().item()))
)py";
    CommandResult check = RunCommand(
        "/usr/bin/python3 " + script.string() + " " +
        (dir / "smooth.csv").string() + " " + model.string() + " 7 0.2 2>&1");
    ASSERT_EQ(check.exit_code, 0) << check.output;
    const double python_error = std::stod(check.output);
    EXPECT_NEAR(python_error, best.metrics().validation().max_abs_error(),
                1e-12 + 1e-9 * python_error);
  } else {
    GTEST_LOG_(WARNING) << "python3-torch missing: model not checked in Python";
  }

  EXPECT_EQ(worker.Terminate(std::chrono::seconds(30)), 0);
  EXPECT_EQ(controller.Terminate(std::chrono::seconds(30)), 0);
}

// A controller and a worker in a fresh directory, and Fashion-MNIST's test
// images (10,000, the Debian package's gzip files as shipped) uploaded as
// IDX: the setting of the Fashion-MNIST tests.
class FashionMnistTest : public ::testing::Test {
 protected:
  void Start(const std::string& name) {
    const fs::path fashion = "/usr/share/datasets/fashion-mnist";
    const fs::path images = fashion / "t10k-images-idx3-ubyte.gz";
    const fs::path labels = fashion / "t10k-labels-idx1-ubyte.gz";
    ASSERT_TRUE(fs::exists(images) && fs::exists(labels))
        << "apt-get install dataset-fashion-mnist (deploy/install-deps.sh "
           "does)";
    dir_ = fs::path(::testing::TempDir()) / name;
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const fs::path port_file = dir_ / "port";
    controller_ = std::make_unique<Process>(
        std::vector<std::string>{EVONAS_CONTROLLER_BIN, "--listen=127.0.0.1:0",
                                 "--port-file=" + port_file.string(),
                                 "--db=" + (dir_ / "evonas.db").string(),
                                 "--data-dir=" + (dir_ / "data").string(),
                                 "--heartbeat-seconds=1", "--plaintext",
                                 "--no-auth"},
        dir_ / "controller.log");
    const std::string address = ControllerAddress(port_file);
    ASSERT_FALSE(address.empty()) << ReadFile(dir_ / "controller.log");
    worker_ = std::make_unique<Process>(
        std::vector<std::string>{EVONAS_WORKER_BIN, "--controller=" + address,
                                 "--cache-dir=" + (dir_ / "cache").string(),
                                 "--plaintext"},
        dir_ / "worker.log");
    cli_ = std::string(EVONAS_CLI_BIN) + " --controller " + address +
           " --plaintext --output json ";
    CommandResult upload =
        RunCommand(cli_ + "dataset upload --format idx --labels " +
                   labels.string() + " " + images.string());
    ASSERT_EQ(upload.exit_code, 0) << upload.output;
    dataset_ = ParseJson<v1::Dataset>(upload.output);
  }

  void TearDown() override {
    if (worker_) EXPECT_EQ(worker_->Terminate(std::chrono::seconds(30)), 0);
    if (controller_) {
      EXPECT_EQ(controller_->Terminate(std::chrono::seconds(30)), 0);
    }
  }

  fs::path dir_;
  std::string cli_;
  v1::Dataset dataset_;
  std::unique_ptr<Process> controller_, worker_;
};

// The accuracy of a downloaded Fashion-MNIST model on the validation rows of
// the t10k files (seed 11, fraction 0.2, as the tests' experiments split
// them), recomputed from the raw IDX files outside evonas: `runtime`
// "torch" loads TorchScript in Debian's PyTorch, "opencv" ONNX in OpenCV's
// dnn module (float32). Returns (rows, correct); (0, 0) after a failed
// assertion.
std::pair<int, int> FashionAccuracyInPython(const fs::path& dir,
                                            const fs::path& model,
                                            const std::string& runtime) {
  const fs::path fashion = "/usr/share/datasets/fashion-mnist";
  const fs::path script = dir / "check_fashion.py";
  std::ofstream(script) << R"py(
import gzip, struct, sys
import numpy as np
M = (1 << 64) - 1
def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)
images, labels, model_path, runtime, seed, fraction = sys.argv[1:7]
raw = gzip.open(images).read()
n, h, w = struct.unpack('>III', raw[4:16])
x = np.frombuffer(raw[16:], dtype=np.uint8).reshape(n, h * w)
y = np.frombuffer(gzip.open(labels).read()[8:], dtype=np.uint8)
val = [i for i in range(n) if splitmix64((int(seed) + i) & M) / 2.0**64 < float(fraction)]
if runtime == 'torch':
    import torch
    logits = torch.jit.load(model_path)(torch.from_numpy(x[val].astype(np.float64))).detach().numpy()
else:
    import cv2
    net = cv2.dnn.readNetFromONNX(model_path)
    net.setInput(x[val].astype(np.float32))
    logits = net.forward()
print(len(val), int((logits.argmax(1) == y[val]).sum()))
)py";
  CommandResult check = RunCommand(
      "/usr/bin/python3 " + script.string() + " " +
      (fashion / "t10k-images-idx3-ubyte.gz").string() + " " +
      (fashion / "t10k-labels-idx1-ubyte.gz").string() + " " + model.string() +
      " " + runtime + " 11 0.2 2>&1");
  EXPECT_EQ(check.exit_code, 0) << check.output;
  int rows = 0, correct = 0;
  EXPECT_EQ(std::sscanf(check.output.c_str(), "%d %d", &rows, &correct), 2)
      << check.output;
  return {rows, correct};
}

// A classification of Fashion-MNIST's test images searched and trained by a
// real worker, and the downloaded model's accuracy on the validation rows
// recomputed in Debian's PyTorch from the raw IDX files.
TEST_F(FashionMnistTest, Classification) {
  ASSERT_NO_FATAL_FAILURE(Start("evonas-e2e-fashion"));
  const fs::path& dir = dir_;
  const std::string& cli = cli_;
  const v1::Dataset& dataset = dataset_;
  EXPECT_EQ(dataset.row_count(), 10000);
  EXPECT_EQ(dataset.format(), v1::DATASET_FORMAT_IDX);
  EXPECT_EQ(dataset.columns_size(), 785);

  CommandResult create = RunCommand(
      cli + "experiment create --dataset " + dataset.id() +
      " --task classification --outputs label --min-accuracy 0.7"
      " --budget-candidates 2 --min-adam-steps 150 --max-adam-steps 300"
      " --max-width 32 --max-depth 2 --seed 11");
  ASSERT_EQ(create.exit_code, 0) << create.output;
  auto experiment = ParseJson<v1::Experiment>(create.output);
  EXPECT_EQ(experiment.class_count(), 10);
  EXPECT_EQ(experiment.spec().input_columns_size(), 784);

  CommandResult wait = RunCommand(cli + "experiment wait " + experiment.id() +
                                  " --poll-seconds 0.5 --timeout-seconds 600");
  ASSERT_EQ(wait.exit_code, 0) << wait.output << ReadFile(dir / "worker.log");
  CommandResult front_out =
      RunCommand(cli + "experiment front " + experiment.id());
  ASSERT_EQ(front_out.exit_code, 0) << front_out.output;
  auto front = ParseJson<v1::ParetoFront>(front_out.output);
  ASSERT_GE(front.candidates_size(), 1) << ReadFile(dir / "worker.log");
  EXPECT_EQ(front.objectives(0), v1::OBJECTIVE_VALIDATION_ERROR_RATE);
  const v1::Candidate& best = front.candidates(0);
  // Ten classes: chance is 10%; even 150 Adam steps of a small MLP reach
  // far more.
  EXPECT_GT(best.metrics().validation().accuracy(), 0.7);
  EXPECT_TRUE(best.feasible());

  const fs::path model = dir / "best.pt";
  CommandResult download = RunCommand(cli + "model download " + best.id() +
                                      " -o " + model.string());
  ASSERT_EQ(download.exit_code, 0) << download.output;
  if (!PythonTorchAvailable()) {
    GTEST_LOG_(WARNING) << "python3-torch missing: model not checked in Python";
  } else {
    const auto [rows, correct] = FashionAccuracyInPython(dir, model, "torch");
    EXPECT_EQ(rows, best.metrics().validation().row_count());
    EXPECT_DOUBLE_EQ(static_cast<double>(correct) / rows,
                     best.metrics().validation().accuracy());
  }
}

// A convolutional search on Fashion-MNIST's test images: every candidate has
// a trunk, a real worker trains it in float32, and the downloaded
// TorchScript and ONNX models give the reported validation accuracy in
// Debian's PyTorch and in OpenCV.
TEST_F(FashionMnistTest, Convolutional) {
  ASSERT_NO_FATAL_FAILURE(Start("evonas-e2e-conv"));
  const fs::path& dir = dir_;
  const std::string& cli = cli_;
  const v1::Dataset& dataset = dataset_;

  CommandResult create = RunCommand(
      cli + "experiment create --dataset " + dataset.id() +
      " --task classification --outputs label --min-accuracy 0.7"
      " --budget-candidates 2 --min-adam-steps 100 --max-adam-steps 200"
      " --min-conv-layers 1 --max-conv-layers 2 --max-channels 8"
      " --activations relu --max-width 32 --max-depth 1 --seed 11");
  ASSERT_EQ(create.exit_code, 0) << create.output;
  auto experiment = ParseJson<v1::Experiment>(create.output);
  EXPECT_EQ(experiment.spec().search_space().max_pooling_layers(), 4);

  CommandResult wait = RunCommand(cli + "experiment wait " + experiment.id() +
                                  " --poll-seconds 0.5 --timeout-seconds 600");
  ASSERT_EQ(wait.exit_code, 0) << wait.output << ReadFile(dir / "worker.log");
  CommandResult front_out =
      RunCommand(cli + "experiment front " + experiment.id());
  ASSERT_EQ(front_out.exit_code, 0) << front_out.output;
  auto front = ParseJson<v1::ParetoFront>(front_out.output);
  ASSERT_GE(front.candidates_size(), 1) << ReadFile(dir / "worker.log");
  const v1::Candidate& best = front.candidates(0);
  EXPECT_GE(best.genome().conv_layers_size(), 1);
  EXPECT_GT(best.metrics().validation().accuracy(), 0.7);
  EXPECT_EQ(best.metrics().parameter_count(),
            ParameterCount(best.genome(), 784, 10, {28, 28}));

  const fs::path torchscript = dir / "best.pt";
  const fs::path onnx = dir / "best.onnx";
  ASSERT_EQ(RunCommand(cli + "model download " + best.id() + " -o " +
                       torchscript.string())
                .exit_code,
            0);
  ASSERT_EQ(RunCommand(cli + "model download " + best.id() + " -o " +
                       onnx.string() + " --format onnx")
                .exit_code,
            0);
  const double accuracy = best.metrics().validation().accuracy();
  const int64_t rows = best.metrics().validation().row_count();
  if (!PythonTorchAvailable()) {
    GTEST_LOG_(WARNING) << "python3-torch missing: model not checked in Python";
  } else {
    const auto [torch_rows, torch_correct] =
        FashionAccuracyInPython(dir, torchscript, "torch");
    EXPECT_EQ(torch_rows, rows);
    EXPECT_DOUBLE_EQ(static_cast<double>(torch_correct) / rows, accuracy);
    // OpenCV computes in float32 in another order: an image whose two best
    // logits are within rounding may flip.
    const auto [onnx_rows, onnx_correct] =
        FashionAccuracyInPython(dir, onnx, "opencv");
    EXPECT_EQ(onnx_rows, rows);
    EXPECT_NEAR(static_cast<double>(onnx_correct), accuracy * rows, 2.0);
  }
}

}  // namespace
}  // namespace evonas
