// ctest-labels: unit
// Every canonical solution of the toy HumanEval passes its own test (run by /usr/bin/python3 in a
// subprocess), and a wrong body fails every test, so the tests can tell right from wrong.
#include <cstdio>
#include <sys/wait.h>

#include "world_fixture.h"

namespace atax::world {
namespace {

// Runs `script` with /usr/bin/python3 and returns (exit status, stdout).
std::pair<int, std::string> run_python(const fs::path& script) {
  std::string cmd = "/usr/bin/python3 " + script.string() + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {-1, ""};
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// A Python program that runs every task of `tasks_path` with `body` (or the canonical solution when
// empty) and prints "<task_id> pass|fail" per task.
std::string harness(const fs::path& tasks_path, const std::string& body) {
  return "import json\n"
         "for line in open(" + json(tasks_path.string()).dump() + "):\n"
         "    t = json.loads(line)\n"
         "    body = " + json(body).dump() + " or t['canonical_solution']\n"
         "    src = t['prompt'] + body + '\\n' + t['test'] + '\\n' + 'check(' + t['entry_point'] + ')\\n'\n"
         "    try:\n"
         "        exec(compile(src, t['task_id'], 'exec'), {})\n"
         "        print(t['task_id'], 'pass')\n"
         "    except Exception as e:\n"
         "        print(t['task_id'], 'fail', type(e).__name__)\n";
}

TEST(WorldHumanEvalTest, CanonicalSolutionsPassAndWrongOnesFail) {
  if (!fs::exists("/usr/bin/python3")) GTEST_SKIP() << "no /usr/bin/python3";
  const fs::path& dir = testing::quick_world();
  fs::path tasks = dir / "code/HumanEval.jsonl";
  size_t n = read_jsonl(tasks).size();
  ASSERT_GE(n, 40u);
  fs::path script = testing::WorldDirs::get().scratch("humaneval_check.py");
  write_file_atomic(script, harness(tasks, ""));
  auto [rc, out] = run_python(script);
  ASSERT_EQ(rc, 0) << out;
  size_t pass = 0;
  for (const auto& line : split(out, '\n'))
    if (ends_with(line, " pass")) ++pass;
    else if (!line.empty()) ADD_FAILURE() << line;
  EXPECT_EQ(pass, n);

  write_file_atomic(script, harness(tasks, "    return None\n"));
  auto [rc2, out2] = run_python(script);
  ASSERT_EQ(rc2, 0) << out2;
  size_t fail = 0;
  for (const auto& line : split(out2, '\n')) fail += line.find(" fail ") != std::string::npos;
  EXPECT_EQ(fail, n);
}

}  // namespace
}  // namespace atax::world
