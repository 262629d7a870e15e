// atax convert: a GGUF file to a Hugging Face folder (config.json, model.safetensors,
// tokenizer.json, tokenizer_config.json) that atax — and transformers — load.
#include <iostream>

#include <fmt/format.h>

#include "cli/cli.h"
#include "gguf/gguf.h"

namespace atax::cli {
namespace {

void add_convert(CLI::App& app) {
  struct Opts {
    std::string in, out, dtype = "float32";
    bool force = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("convert", "Convert a GGUF model file (llama.cpp) into a Hugging Face folder");
  sub->add_option("--in", o->in, "input MODEL.gguf")->required();
  sub->add_option("--out", o->out, "output folder (written atomically)")->required();
  sub->add_option("--dtype", o->dtype, "dtype of the written weights: float32 | bfloat16 | float16")
      ->check(CLI::IsMember({"float32", "bfloat16", "float16"}))
      ->capture_default_str();
  sub->add_flag("--force", o->force, "replace --out if it exists and is not empty");
  sub->callback([o] {
    register_gguf_loader();
    const fs::path in(o->in), out(o->out);
    if (!fs::is_regular_file(in))
      throw Error("no such file", o->in, "pass --in PATH/TO/MODEL.gguf");
    if (in.extension() != ".gguf")
      throw Error("--in is not a .gguf file", o->in, "atax convert reads GGUF files (llama.cpp's format)");
    OutputDir claim = claim_output_dir(out, "convert", o->force);
    const torch::Dtype dtype = o->dtype == "bfloat16" ? torch::kBFloat16
                               : o->dtype == "float16" ? torch::kFloat16
                                                       : torch::kFloat32;
    gguf::GgufFile f = gguf::GgufFile::open(in);
    json cfg = gguf::hf_config_json(f);
    convert_gguf_to_hf(in, out, dtype);
    claim.mark_finished({{"in", o->in}});
    std::cout << json({{"in", o->in},
                       {"out", o->out},
                       {"architecture", cfg["architectures"][0]},
                       {"gguf_version", f.version()},
                       {"gguf_tensors", f.tensors().size()},
                       {"dtype", o->dtype}})
                     .dump()
              << "\n";
  });
}

ATAX_COMMAND("convert", add_convert);

}  // namespace
}  // namespace atax::cli
