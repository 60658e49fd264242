// Expert parallelism end to end: `mpirun -np 2|3 qnext ...` against one process, on every golden
// model: logits (prefill, decode, MTP) within the golden tolerance of the single-process ones and
// of the reference, the same greedy ids (with and without MTP), bit-identical reruns; a rank that
// cannot load its share, or loads another model, or is killed mid-run, ends the job with an error.
// Every transport is held to the loopback interface. Skipped, with the reason, where the build
// has no MPI; CI installs it (scripts/install-deps.sh).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/golden.h"
#include "common/run.h"
#include "io/npy.h"

namespace fs = std::filesystem;

namespace qnext {
namespace {

using testing::data_dir;
using testing::qnext_bin;
using testing::run;

constexpr float kLogitTol = 2e-3f;  // the golden tolerance of logits (tests/engine/test_golden.cpp)

// This test process's own Open MPI session directory (its TMPDIR), removed when it ends. The
// default, /tmp/ompi.HOST.UID, is shared by every mpirun of the user: one job removing it as it ends
// while another creates it fails the second ("mkdir ... File exists"), and ctest runs these tests
// side by side.
const std::string& session_dir() {
  struct Dir {
    std::string path;
    Dir() : path(testing::temp_path("ompi")) { fs::create_directories(path); }
    ~Dir() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  };
  static const Dir dir;
  return dir.path;
}

// mpirun held to this machine's loopback; shared memory without the single-copy mechanism (it
// needs ptrace rights that containers often refuse, and then warns on every run).
std::string mpirun_base() {
  return "TMPDIR=" + session_dir() + " " + std::string(QNEXT_MPIRUN) +
         " --allow-run-as-root --oversubscribe --mca btl self,vader,tcp --mca btl_tcp_if_include lo"
         " --mca oob_tcp_if_include lo --mca btl_vader_single_copy_mechanism none";
}
std::string mpirun(int np) { return mpirun_base() + " -np " + std::to_string(np) + " "; }

#define SKIP_WITHOUT_MPI()                                                                                \
  if (std::string(QNEXT_MPIRUN).empty()) {                                                                \
    GTEST_SKIP() << "built without MPI: install openmpi-bin and libopenmpi-dev (scripts/install-deps.sh) " \
                    "and reconfigure";                                                                    \
  }

// Whether `line` (ending in a newline) is one of the lines of `output`.
bool has_line(const std::string& output, const std::string& line) {
  for (size_t at = output.find(line); at != std::string::npos; at = output.find(line, at + 1))
    if (at == 0 || output[at - 1] == '\n') return true;
  return false;
}

std::string csv(const std::vector<int32_t>& ids, size_t n) {
  std::string s;
  for (size_t i = 0; i < n && i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s;
}

std::vector<float> read_f32(const std::string& path) {
  auto a = read_npy_f32(path);
  if (!a) throw std::runtime_error(a.error());
  return a->data;
}

std::string bytes_of(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

struct GoldenModel {
  std::string name, path;  // the data dir's name, what --model takes
  bool dense_reference;    // reference.safetensors holds whole prefill_logits [T, V]
};

void PrintTo(const GoldenModel& m, std::ostream* os) { *os << m.name; }

class ExpertParallel : public ::testing::TestWithParam<GoldenModel> {};

// Quantized fixtures meet their references in exact mode (float activations); so does everything here.
const std::string kExact = "QNEXT_ACTIVATIONS=f32 ";

TEST_P(ExpertParallel, MatchesOneProcess) {
  SKIP_WITHOUT_MPI();
  const GoldenModel& m = GetParam();
  testing::Reference ref(m.name);
  const auto prompt = ref.ids("prompt_ids");
  const auto gen = ref.ids("gen_ids");
  const size_t T = 70;  // more than one delta-rule chunk, and more than the MoE's few-token path
  const std::string ids = csv(prompt, T);
  const std::string model = " -t 1 --model " + m.path;
  auto out = [](const std::string& n) { return testing::temp_path(n + ".npy"); };

  // One process: the baseline.
  auto r = run(kExact + qnext_bin() + " logits" + model + " --ids " + ids + " --out " + out("one") + " --mtp-out " + out("one_mtp"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto one = read_f32(out("one")), one_mtp = read_f32(out("one_mtp"));
  const size_t V = one.size() / T;
  if (m.dense_reference) {
    EXPECT_LE(testing::max_abs_diff(one.data(), ref.f32("prefill_logits").data(), T * V), kLogitTol);
  }

  for (int np : {2, 3}) {
    SCOPED_TRACE("-np " + std::to_string(np));
    const std::string a = out("np" + std::to_string(np)), b = out("np" + std::to_string(np) + "_again");
    const std::string mtp = out("np" + std::to_string(np) + "_mtp");
    r = run(kExact + mpirun(np) + qnext_bin() + " logits" + model + " --ids " + ids + " --out " + a + " --mtp-out " + mtp);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(r.output, "") << "only rank 0 prints, and logits prints nothing";
    const auto got = read_f32(a), got_mtp = read_f32(mtp);
    ASSERT_EQ(got.size(), one.size());
    ASSERT_EQ(got_mtp.size(), one_mtp.size());
    const float d = testing::max_abs_diff(got.data(), one.data(), got.size());
    EXPECT_LE(d, kLogitTol) << "prefill";
    EXPECT_GT(d, 0.0f) << "bit-identical to one process: were the other ranks' experts computed there at all?";
    EXPECT_LE(testing::max_abs_diff(got_mtp.data(), one_mtp.data(), got_mtp.size()), kLogitTol) << "MTP";
    if (m.dense_reference) {
      EXPECT_LE(testing::max_abs_diff(got.data(), ref.f32("prefill_logits").data(), T * V), kLogitTol) << "reference";
    }

    // The same N again: the same bytes (sums in rank order, whatever the timing).
    r = run(kExact + mpirun(np) + qnext_bin() + " logits" + model + " --ids " + ids + " --out " + b);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_TRUE(bytes_of(a) == bytes_of(b)) << "two runs with -np " << np << " differ";

    // Decoding: one token per step, the MoE's few-token path on every rank.
    r = run(kExact + mpirun(np) + qnext_bin() + " logits --decode" + model + " --ids " + ids + " --out " + b);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_LE(testing::max_abs_diff(read_f32(b).data(), one.data(), one.size()), kLogitTol) << "decode";
    for (const auto& p : {a, b, mtp}) fs::remove(p);
  }
  for (const auto& p : {out("one"), out("one_mtp")}) fs::remove(p);

  // Greedy ids from the whole prompt: the reference's, with and without MTP speculation.
  const std::string file = testing::temp_path("prompt.json");
  std::ofstream(file) << nlohmann::json(prompt).dump();
  const std::string want = csv(gen, gen.size()) + "\n";
  const std::string n = " -n " + std::to_string(gen.size()) + " --print-ids --ids-file " + file;
  for (const std::string& launch : {std::string(), mpirun(2), mpirun(3)})
    for (const std::string mtp : {"", " --mtp 2"}) {
      r = run(kExact + launch + qnext_bin() + " generate" + model + n + mtp);
      ASSERT_EQ(r.exit_code, 0) << launch << mtp << ": " << r.output;
      EXPECT_TRUE(has_line(r.output, want)) << launch << mtp << ": " << r.output;
    }
  fs::remove(file);
}

INSTANTIATE_TEST_SUITE_P(
    GoldenModels, ExpertParallel,
    ::testing::Values(GoldenModel{"tiny-b", data_dir("tiny-b"), true},
                      GoldenModel{"tiny-b-fp8", data_dir("tiny-b-fp8"), true},
                      GoldenModel{"tiny-b-w4a16", data_dir("tiny-b-w4a16"), true},
                      GoldenModel{"tiny-b-awq", data_dir("tiny-b-awq"), true},
                      GoldenModel{"tiny-b-yarn", data_dir("tiny-b-yarn"), true},
                      GoldenModel{"tiny-real-vocab", data_dir("tiny-real-vocab"), false},
                      GoldenModel{"gguf/tiny-real-vocab-q8_0", data_dir("gguf/tiny-real-vocab-q8_0"), false},
                      GoldenModel{"gguf/tiny-k-q4_k_m", data_dir("gguf/tiny-k-q4_k_m"), true}),
    [](const auto& info) {
      std::string s = info.param.name;
      for (char& ch : s)
        if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return s;
    });

// `qnext info --ranks N` (no MPI needed): rank 0 holds the dense weights and ceil(E/N) experts a layer.
TEST(ExpertParallelInfo, BytesPerRank) {
  auto r = run(qnext_bin() + " info --model " + data_dir("tiny-b") + " --ranks 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("ranks:            with 3 (mpirun -np 3): rank 0 holds "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("+ 22 of 64 experts per layer), ranks 1..2 "), std::string::npos) << r.output;
  r = run(qnext_bin() + " info --model " + data_dir("tiny-b"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("ranks:"), std::string::npos) << "one process: no ranks line\n" << r.output;
}

TEST(ExpertParallelErrors, RankThatCannotLoadItsShareIsNamed) {
  SKIP_WITHOUT_MPI();
  // Two programs in one job (MPMD): rank 1 gets a model path that does not exist.
  const std::string out = testing::temp_path("x.npy");
  const std::string base = mpirun_base();
  auto r = run(base + " -np 1 " + qnext_bin() + " logits -t 1 --model " + data_dir("tiny-b") + " --ids 1,2 --out " + out +
               " : -np 1 " + qnext_bin() + " logits -t 1 --model /nonexistent/share --ids 1,2 --out " + out);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("error: rank 1: /nonexistent/share/config.json: cannot open"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out)) << "rank 0 went on without rank 1";

  // A model of the same shape but other bytes: not the same model.
  r = run(base + " -np 1 " + qnext_bin() + " logits -t 1 --model " + data_dir("tiny-b") + " --ids 1,2 --out " + out +
          " : -np 1 " + qnext_bin() + " logits -t 1 --model " + data_dir("tiny-b-fp8") + " --ids 1,2 --out " + out);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("error: rank 1 loaded another model"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out));
}

// The pid of the process with rank `rank` among those whose command line holds `marker`.
pid_t find_rank(const std::string& marker, int rank) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string pid = e.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd = bytes_of("/proc/" + pid + "/cmdline"), env = bytes_of("/proc/" + pid + "/environ");
    if (cmd.find(marker) == std::string::npos || cmd.rfind(std::string(QNEXT_MPIRUN), 0) == 0) continue;
    if (env.find(std::string("OMPI_COMM_WORLD_RANK=") + std::to_string(rank) + '\0') != std::string::npos) return std::stoi(pid);
  }
  return -1;
}

// Starts a long generation (a million tokens) under mpirun -np 2 (env: variables before it), sends
// rank 1 `sig` once it decodes, and returns the job's exit status, seconds from the signal to its
// end (it is killed after 30) and its output.
struct JobEnd {
  int status = 0;
  double seconds = 0;
  bool ended = false;
  std::string output;
};
JobEnd signal_rank_1(const std::string& env, int sig) {
  const std::string marker = testing::temp_path("signal_marker.json");
  std::ofstream(marker) << "[1, 2, 3]";
  const std::string log = testing::temp_path("signal.log");
  const std::string cmd = env + mpirun(2) + qnext_bin() + " generate -t 1 --model " + data_dir("tiny-b") +
                          " --ids-file " + marker + " -n 1000000 > " + log + " 2>&1";
  JobEnd end;
  const pid_t job = fork();
  if (job < 0) return end;
  if (job == 0) {
    setpgid(0, 0);
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  pid_t victim = -1;
  for (int i = 0; i < 300 && victim < 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    victim = find_rank(marker, 1);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // loaded, and in the middle of decoding
  if (victim > 0) ::kill(victim, sig);
  const auto t0 = std::chrono::steady_clock::now();
  pid_t done = 0;
  while ((done = waitpid(job, &end.status, WNOHANG)) == 0 &&
         std::chrono::steady_clock::now() - t0 < std::chrono::seconds(30))
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  end.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  end.ended = done == job;
  if (!end.ended) {  // still running: do not leave it behind
    ::kill(-job, SIGKILL);
    waitpid(job, &end.status, 0);
  }
  if (victim > 0) ::kill(victim, SIGKILL);  // a stopped rank outlives its job otherwise
  end.output = victim > 0 ? bytes_of(log) : "rank 1 never started\n" + bytes_of(log);
  fs::remove(marker);
  fs::remove(log);
  return end;
}

TEST(ExpertParallelErrors, KilledRankEndsTheJobWithinSeconds) {
  SKIP_WITHOUT_MPI();
  const JobEnd end = signal_rank_1("", SIGKILL);
  EXPECT_TRUE(end.ended) << "the job still ran 30 s after rank 1 died:\n" << end.output;
  EXPECT_TRUE(WIFEXITED(end.status) && WEXITSTATUS(end.status) != 0) << end.output;
  EXPECT_LT(end.seconds, 10.0) << end.output;
  EXPECT_NE(end.output.find("rank 1"), std::string::npos) << end.output;  // mpirun's report
}

// A rank that stops answering (alive, so mpirun sees nothing): rank 0's own timeout ends the job.
TEST(ExpertParallelErrors, StoppedRankEndsTheJobAfterTheTimeout) {
  SKIP_WITHOUT_MPI();
  const JobEnd end = signal_rank_1("QNEXT_MPI_TIMEOUT=2 ", SIGSTOP);
  EXPECT_TRUE(end.ended) << "the job still ran 30 s after rank 1 stopped:\n" << end.output;
  EXPECT_TRUE(WIFEXITED(end.status) && WEXITSTATUS(end.status) != 0) << end.output;
  EXPECT_LT(end.seconds, 15.0) << end.output;
  // (Stopped before it took a request, or before it answered one.)
  EXPECT_TRUE(end.output.find("error: expert parallelism: rank 1 did not answer within 2 s") != std::string::npos ||
              end.output.find("error: expert parallelism: rank 1 did not take its request within 2 s") != std::string::npos)
      << end.output;
}

}  // namespace
}  // namespace qnext
