// Workflows the Generate view queues: ComfyUI's default txt2img graph from the form's fields, or a workflow
// the user drops or pastes.

// The API-format txt2img workflow (node ids as ComfyUI's default graph).
export function workflowFromForm(f) {
  return {
    "4": { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: f.ckpt } },
    "5": { class_type: "EmptyLatentImage", inputs: { width: f.width, height: f.height, batch_size: f.batch } },
    "6": { class_type: "CLIPTextEncode", inputs: { text: f.text, clip: ["4", 1] } },
    "7": { class_type: "CLIPTextEncode", inputs: { text: f.negative, clip: ["4", 1] } },
    "3": { class_type: "KSampler", inputs: { seed: f.seed, steps: f.steps, cfg: f.cfg, sampler_name: f.sampler,
                                             scheduler: f.scheduler, denoise: 1.0, model: ["4", 0], positive: ["6", 0],
                                             negative: ["7", 0], latent_image: ["5", 0] } },
    "8": { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["4", 2] } },
    "9": { class_type: "SaveImage", inputs: { filename_prefix: "dashboard", images: ["8", 0] } },
  };
}

const isApiFormat = (o) => o && typeof o === "object" && !Array.isArray(o) && Object.keys(o).length > 0 &&
  Object.values(o).every((n) => n && typeof n === "object" && typeof n.class_type === "string");

// {prompt} from JSON text: an API-format workflow, a /prompt body ({"prompt": ...}), or a file that carries
// the API part beside the UI graph (as a PNG's metadata does: {"prompt", "workflow"}); else {error}.
export function workflowFromText(text) {
  let o;
  try {
    o = JSON.parse(text);
  } catch (e) {
    return { error: `not JSON: ${e.message}` };
  }
  if (isApiFormat(o)) return { prompt: o };
  if (o && isApiFormat(o.prompt)) return { prompt: o.prompt };
  if (o && typeof o.prompt === "string") return workflowFromText(o.prompt);
  if (o && Array.isArray(o.nodes))
    return { error: "this is ComfyUI's UI format without its API part: export it with 'Export (API)' in ComfyUI" };
  return { error: "not an API-format workflow (an object of nodes with class_type and inputs)" };
}
