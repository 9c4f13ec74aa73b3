// kiln launch's core (distributed::launch): environment per rank, prefixed output,
// failure propagation (the first failing rank is named, the others are stopped).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>

#include "kiln/distributed_launch.h"
#include "kiln/error.h"

using namespace kiln;
namespace dist = kiln::distributed;

namespace {
std::vector<std::string> run(const std::string& script, dist::LaunchOptions o, dist::LaunchResult& r) {
  std::vector<std::string> lines;
  r = dist::launch({"/bin/sh", "-c", script}, o, [&](const std::string& l) { lines.push_back(l); });
  return lines;
}
bool has(const std::vector<std::string>& lines, const std::string& want) {
  return std::find(lines.begin(), lines.end(), want) != lines.end();
}
}  // namespace

TEST(Launch, EveryRankGetsItsEnvironmentAndAPrefix) {
  dist::LaunchOptions o;
  o.nproc_per_node = 3;
  o.nnodes = 2;
  o.node_rank = 1;
  o.master_port = 31234;
  dist::LaunchResult r;
  auto lines = run("echo $RANK $LOCAL_RANK $WORLD_SIZE $MASTER_ADDR:$MASTER_PORT; printf 'no newline'", o, r);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.failed_rank, -1);
  for (int local = 0; local < 3; ++local) {
    const std::string p = "[rank " + std::to_string(3 + local) + "] ";
    EXPECT_TRUE(has(lines, p + std::to_string(3 + local) + " " + std::to_string(local) + " 6 127.0.0.1:31234"));
    EXPECT_TRUE(has(lines, p + "no newline"));
  }
  EXPECT_EQ(lines.size(), 6u);
}

TEST(Launch, AFailingRankStopsTheOthersAndIsNamed) {
  dist::LaunchOptions o;
  o.nproc_per_node = 3;
  o.grace = std::chrono::milliseconds(500);
  dist::LaunchResult r;
  const auto start = std::chrono::steady_clock::now();
  auto lines = run("if [ $RANK = 1 ]; then echo failing; exit 3; fi; exec sleep 60", o, r);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.failed_rank, 1);
  EXPECT_NE(r.failure.find("rank 1"), std::string::npos) << r.failure;
  EXPECT_NE(r.failure.find("exited with code 3"), std::string::npos) << r.failure;
  EXPECT_TRUE(has(lines, "[rank 1] failing"));
}

TEST(Launch, AKilledRankIsReportedWithItsSignal) {
  dist::LaunchOptions o;
  o.nproc_per_node = 2;
  o.grace = std::chrono::milliseconds(500);
  dist::LaunchResult r;
  run("if [ $RANK = 0 ]; then kill -9 $$; fi; exec sleep 60", o, r);
  EXPECT_EQ(r.failed_rank, 0);
  EXPECT_EQ(r.exit_code, 128 + 9);
  EXPECT_NE(r.failure.find("signal 9"), std::string::npos) << r.failure;
}

TEST(Launch, BadOptionsAndCommandsAreErrors) {
  dist::LaunchOptions o;
  o.nproc_per_node = 0;
  EXPECT_THROW(dist::launch({"/bin/true"}, o), Error);
  o.nproc_per_node = 1;
  EXPECT_THROW(dist::launch({}, o), Error);
  EXPECT_THROW(dist::launch({"/nonexistent/kiln-no-such-program"}, o, [](const std::string&) {}), Error);
}
