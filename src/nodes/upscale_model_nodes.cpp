#include "nodes/upscale_model_nodes.h"

#include "nodes/node_types.h"
#include "nodes/node_util.h"

namespace netdist::nodes {

using graph::NodeContext;
using graph::NodeInputs;
using graph::Value;

namespace {

Result<std::vector<Value>> run_image_upscale_with_model(NodeContext& ctx, const NodeInputs& in) {
  ND_ASSIGN_OR_RETURN(auto model, need<UpscaleModelObject>(in, "upscale_model"));
  ND_ASSIGN_OR_RETURN(auto image, need<ImageObject>(in, "image"));
  Status progress_status = Status::ok();
  auto progress = [&](int done, int total) {
    progress_status = ctx.progress(done, total);
    return progress_status.is_ok();
  };
  auto upscaled = upscale_image(*model->model, image->images, progress);
  if (!progress_status.is_ok()) return progress_status;
  auto out = std::make_shared<ImageObject>();
  ND_ASSIGN_OR_RETURN(out->images, in_node(std::move(upscaled), "ImageUpscaleWithModel"));
  return std::vector<Value>{object(out)};
}

}  // namespace

void register_upscale_model_nodes(graph::NodeRegistry& r, std::shared_ptr<NodeEnv> env) {
  graph::InputSpec name = graph::combo_input("model_name", {});
  name.options_provider = [env] { return env->upscale_model_names(); };
  add_fn_node(r, make_schema("UpscaleModelLoader", "Load Upscale Model", "loaders", {name}, {"UPSCALE_MODEL"}),
              [env](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                auto m = std::make_shared<UpscaleModelObject>();
                m->name = in.get_string("model_name");
                ND_ASSIGN_OR_RETURN(m->model, in_node(env->load_upscale_model(m->name), "UpscaleModelLoader"));
                return std::vector<Value>{object(m)};
              });
  add_fn_node(r,
              make_schema("ImageUpscaleWithModel", "Upscale Image (using Model)", "image/upscaling",
                          {graph::link_input("upscale_model", "UPSCALE_MODEL"), graph::link_input("image", "IMAGE")},
                          {"IMAGE"}),
              run_image_upscale_with_model);
}

}  // namespace netdist::nodes
