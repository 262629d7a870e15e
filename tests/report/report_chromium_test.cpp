// ctest-labels: slow
// Renders the constructed report in headless Chromium (Debian's `chromium` package): the DOM after
// load must hold every chart, each laid out at a real size with drawn elements of non-zero size
// (measured in the browser with getBBox), and the full-page screenshot must be a 1200×3000 PNG
// that is not blank. Skipped, not failed, when chromium is not installed.
// The page and the screenshot stay in <build>/report_chromium/<test>/ for a look by eye.
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <unordered_set>

#include <gtest/gtest.h>
#include <zlib.h>

#include "report/report.h"
#include "sample_report.h"

namespace atax::report {
namespace {

// The first of chromium / chromium-browser / google-chrome on PATH, or "".
std::string find_chromium() {
  for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
    std::string cmd = std::string("command -v ") + name + " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) == 0) return name;
  }
  return {};
}

std::string chromium_flags(const fs::path& profile) {
  return "--headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars --no-first-run "
         "--user-data-dir=" + profile.string();
}

int run(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// Measures every svg.chart in the live page and appends the result as JSON in <pre id="atax-check">.
const char* const kCheckScript = R"js(
<script>
(function () {
  var out = [];
  document.querySelectorAll('svg.chart').forEach(function (svg) {
    var r = svg.getBoundingClientRect();
    var drawn = {};
    ['rect.bar', 'path.series', 'circle.point', 'line.errorbar-line', 'path.pareto-front', 'circle.alpha-opt',
     'path.sweep-curve', 'line.gridline', 'text.tick-label'].forEach(function (sel) {
      var n = 0;
      svg.querySelectorAll(sel).forEach(function (el) {
        var b = el.getBBox();
        if (b.width > 0 || b.height > 0) n++;
      });
      drawn[sel] = n;
    });
    out.push({id: svg.id, width: r.width, height: r.height, drawn: drawn});
  });
  var tables = [];
  document.querySelectorAll('.table-wrap').forEach(function (w) {
    tables.push({scroll: w.scrollWidth, client: w.clientWidth});
  });
  var pre = document.createElement('pre');
  pre.id = 'atax-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
  var pt = document.createElement('pre');
  pt.id = 'atax-tables';
  pt.textContent = JSON.stringify(tables);
  document.body.appendChild(pt);
})();
</script>
)js";

struct Png {
  uint32_t width = 0, height = 0;
  int color_type = -1, bit_depth = 0;
  std::vector<uint8_t> pixels;  // unfiltered rows, no filter bytes
  int channels = 0;
};

uint32_t be32(const uint8_t* p) { return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3]; }

// Decodes an 8-bit, non-interlaced RGB or RGBA PNG (what Chromium writes).
Png decode_png(const std::string& bytes) {
  Png png;
  static const uint8_t kSig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
  if (bytes.size() < 33 || std::memcmp(bytes.data(), kSig, 8) != 0) return png;
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  std::string idat;
  int interlace = 0;
  for (size_t pos = 8; pos + 12 <= bytes.size();) {
    const uint32_t len = be32(p + pos);
    const std::string type(bytes.data() + pos + 4, 4);
    if (pos + 12 + len > bytes.size()) break;
    const uint8_t* data = p + pos + 8;
    if (type == "IHDR") {
      png.width = be32(data);
      png.height = be32(data + 4);
      png.bit_depth = data[8];
      png.color_type = data[9];
      interlace = data[12];
    } else if (type == "IDAT") {
      idat.append(reinterpret_cast<const char*>(data), len);
    } else if (type == "IEND") {
      break;
    }
    pos += 12 + len;
  }
  png.channels = png.color_type == 6 ? 4 : png.color_type == 2 ? 3 : 0;
  if (png.channels == 0 || png.bit_depth != 8 || interlace != 0) return png;
  const size_t stride = static_cast<size_t>(png.width) * png.channels;
  std::vector<uint8_t> raw((stride + 1) * png.height);
  uLongf raw_len = raw.size();
  if (uncompress(raw.data(), &raw_len, reinterpret_cast<const Bytef*>(idat.data()), idat.size()) != Z_OK ||
      raw_len != raw.size())
    return png;
  png.pixels.assign(stride * png.height, 0);
  const int bpp = png.channels;
  for (uint32_t y = 0; y < png.height; ++y) {
    const uint8_t filter = raw[y * (stride + 1)];
    const uint8_t* in = &raw[y * (stride + 1) + 1];
    uint8_t* out = &png.pixels[y * stride];
    const uint8_t* up = y ? &png.pixels[(y - 1) * stride] : nullptr;
    for (size_t x = 0; x < stride; ++x) {
      const int a = x >= static_cast<size_t>(bpp) ? out[x - bpp] : 0;
      const int b = up ? up[x] : 0;
      const int c = up && x >= static_cast<size_t>(bpp) ? up[x - bpp] : 0;
      int v = in[x];
      switch (filter) {
        case 0: break;
        case 1: v += a; break;
        case 2: v += b; break;
        case 3: v += (a + b) / 2; break;
        case 4: {
          const int pa = std::abs(b - c), pb = std::abs(a - c), pc = std::abs(a + b - 2 * c);
          v += (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
          break;
        }
        default: return Png{};
      }
      out[x] = static_cast<uint8_t>(v);
    }
  }
  return png;
}

class ChromiumTest : public ::testing::Test {
 protected:
  void SetUp() override {
    browser_ = find_chromium();
    if (browser_.empty())
      GTEST_SKIP() << "chromium is not installed, so the report is not checked in a browser "
                      "(install Debian's `chromium` package: apt-get install -y chromium)";
    // one folder per test: ctest may run the two at once
    dir_ = fs::path(ATAX_BINARY_DIR) / "report_chromium" / ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    write_report(testing::sample_report(), dir_);
    profile_ = fs::temp_directory_path() / ("atax_chromium_profile_" + std::to_string(getpid()) + "_" +
                                            ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override {
    if (!profile_.empty()) fs::remove_all(profile_);
  }
  std::string browser_;
  fs::path dir_, profile_;
};

TEST_F(ChromiumTest, EveryChartIsPresentAndDrawn) {
  // The report as written, with a measuring script appended (the product page has no script).
  std::string html = read_file(dir_ / "report.html");
  const size_t body_end = html.rfind("</body>");
  ASSERT_NE(body_end, std::string::npos);
  write_file_atomic(dir_ / "check.html", html.substr(0, body_end) + kCheckScript + html.substr(body_end));
  const fs::path dom_file = dir_ / "dom.html";
  const std::string cmd = "timeout 180 " + browser_ + " " + chromium_flags(profile_) +
                          " --window-size=1200,3000 --dump-dom 'file://" + fs::absolute(dir_ / "check.html").string() +
                          "' > '" + dom_file.string() + "' 2> '" + (dir_ / "dom.stderr").string() + "'";
  ASSERT_EQ(run(cmd), 0) << "chromium failed; see " << (dir_ / "dom.stderr");
  const std::string dom = read_file(dom_file);
  for (const auto& id : testing::sample_chart_ids())
    EXPECT_NE(dom.find("id=\"" + id + "\""), std::string::npos) << id << " is missing from the DOM after load";

  const size_t at = dom.find("<pre id=\"atax-check\">");
  ASSERT_NE(at, std::string::npos) << "the measuring script did not run";
  const size_t start = dom.find('>', at) + 1, end = dom.find("</pre>", start);
  json check = json::parse(dom.substr(start, end - start));
  std::map<std::string, json> by_id;
  for (const auto& c : check) by_id[c["id"].get<std::string>()] = c;
  ASSERT_EQ(by_id.size(), testing::sample_chart_ids().size());
  for (const auto& id : testing::sample_chart_ids()) {
    SCOPED_TRACE(id);
    const json& c = by_id.at(id);
    EXPECT_GT(c["width"].get<double>(), 600);
    EXPECT_GT(c["height"].get<double>(), 300);
    EXPECT_GE(c["drawn"]["line.gridline"].get<int>(), 3);
    EXPECT_GE(c["drawn"]["text.tick-label"].get<int>(), 3);
  }
  const json& tax = by_id.at("chart-tax")["drawn"];
  EXPECT_EQ(tax["rect.bar"].get<int>(), 7);  // 5 bars with values + the n/a and the n/m placeholders
  EXPECT_EQ(tax["line.errorbar-line"].get<int>(), 5);  // none for the n/m row
  const json& safety = by_id.at("chart-tax-safety")["drawn"];
  EXPECT_EQ(safety["rect.bar"].get<int>(), 2);  // the rates in percentage points, on their own chart
  EXPECT_EQ(safety["line.errorbar-line"].get<int>(), 2);
  // No table needs horizontal scrolling at this width (narrower than 1280 px).
  const size_t tat = dom.find("<pre id=\"atax-tables\">");
  ASSERT_NE(tat, std::string::npos);
  const size_t ts = dom.find('>', tat) + 1;
  json tables = json::parse(dom.substr(ts, dom.find("</pre>", ts) - ts));
  ASSERT_GE(tables.size(), 4u);  // the validity table (the demo's longest labels) among them
  for (const auto& t : tables) EXPECT_LE(t["scroll"].get<int>(), t["client"].get<int>()) << t.dump();
  const json& trade = by_id.at("chart-tradeoff")["drawn"];
  EXPECT_EQ(trade["circle.point"].get<int>(), 7);
  EXPECT_EQ(trade["path.pareto-front"].get<int>(), 1);
  EXPECT_EQ(trade["circle.alpha-opt"].get<int>(), 6);
  EXPECT_EQ(trade["path.sweep-curve"].get<int>(), 1);
  EXPECT_EQ(by_id.at("chart-beta")["drawn"]["path.series"].get<int>(), 3);
  EXPECT_EQ(by_id.at("chart-lambda")["drawn"]["path.series"].get<int>(), 3);
  EXPECT_EQ(by_id.at("chart-training")["drawn"]["path.series"].get<int>(), 3);
}

TEST_F(ChromiumTest, ScreenshotIsNotBlank) {
  const fs::path shot = dir_ / "screenshot.png";
  const std::string cmd = "timeout 180 " + browser_ + " " + chromium_flags(profile_) +
                          " --window-size=1200,3000 --screenshot='" + shot.string() + "' 'file://" +
                          fs::absolute(dir_ / "report.html").string() + "' > '" + (dir_ / "shot.stdout").string() +
                          "' 2>&1";
  ASSERT_EQ(run(cmd), 0) << "chromium failed; see " << (dir_ / "shot.stdout");
  ASSERT_TRUE(fs::exists(shot));
  const std::string bytes = read_file(shot);
  EXPECT_GT(bytes.size(), 40000u) << "a screenshot of five charts should not compress this small";
  Png png = decode_png(bytes);
  EXPECT_EQ(png.width, 1200u);
  EXPECT_EQ(png.height, 3000u);
  ASSERT_FALSE(png.pixels.empty()) << "could not decode the PNG";
  std::unordered_set<uint32_t> colours;
  size_t non_white = 0;
  const size_t n = static_cast<size_t>(png.width) * png.height;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* px = &png.pixels[i * png.channels];
    colours.insert((uint32_t{px[0]} << 16) | (uint32_t{px[1]} << 8) | px[2]);
    if (px[0] < 235 || px[1] < 235 || px[2] < 235) ++non_white;
  }
  EXPECT_GT(colours.size(), 200u) << "text, charts and antialiasing give many colours";
  EXPECT_GT(static_cast<double>(non_white) / static_cast<double>(n), 0.02);
  // the chart colours are on the page: a cost bar and an improvement bar pixel
  auto has = [&](uint32_t rgb) { return colours.count(rgb) > 0; };
  EXPECT_TRUE(has(0xD55E00)) << "no cost-coloured pixel";
  EXPECT_TRUE(has(0x009E73)) << "no improvement-coloured pixel";
}

}  // namespace
}  // namespace atax::report
