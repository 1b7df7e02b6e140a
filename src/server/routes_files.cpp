// GET /view, POST /upload/image, POST /upload/mask (ComfyUI server.py view_image, image_upload).
#include <filesystem>
#include <system_error>

#include "io/image_decode.h"
#include "io/png.h"
#include "server/multipart.h"
#include "server/routes.h"

namespace netdist::server {

namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

std::optional<fs::path> dir_by_type(const ServerState& state, const std::string& type) {
  const ServerOptions& o = state.options();
  std::string dir;
  if (type == "output") dir = o.output_dir;
  else if (type == "input") dir = o.input_dir;
  else if (type == "temp") dir = o.temp_dir;
  else return std::nullopt;
  return fs::absolute(dir).lexically_normal();
}

// folder_paths.annotated_filepath: "name [output]" selects the directory.
std::pair<std::string, std::optional<std::string>> annotated_filepath(const std::string& name) {
  for (const char* type : {"output", "input", "temp"}) {
    const std::string suffix = std::string("[") + type + "]";
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      const size_t cut = suffix.size() + 1;
      return {name.size() >= cut ? name.substr(0, name.size() - cut) : std::string(), std::string(type)};
    }
  }
  return {name, std::nullopt};
}

// os.path.join then abspath: an absolute `b` replaces `a`.
fs::path join_abs(const fs::path& a, const std::string& b) {
  fs::path joined = (!b.empty() && b[0] == '/') ? fs::path(b) : a / b;
  return fs::absolute(joined).lexically_normal();
}

bool is_within(const fs::path& base, const fs::path& path) {
  std::string b = base.lexically_normal().string();
  std::string p = path.lexically_normal().string();
  while (b.size() > 1 && b.back() == '/') b.pop_back();
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p == b || p.rfind(b + "/", 0) == 0;
}

// Resolves symlinks of both and checks containment; a path that does not exist yet is checked by its parent.
bool real_within(const fs::path& base, const fs::path& path) {
  std::error_code ec;
  const fs::path real_base = fs::weakly_canonical(base, ec);
  if (ec) return false;
  const fs::path real_path = fs::weakly_canonical(path, ec);
  if (ec) return false;
  return is_within(real_base, real_path);
}

std::string content_type_for(const std::string& filename) {
  std::string ext = fs::path(filename).extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const std::pair<const char*, const char*> kTypes[] = {
      {".png", "image/png"},   {".jpg", "image/jpeg"},        {".jpeg", "image/jpeg"}, {".webp", "image/webp"},
      {".gif", "image/gif"},   {".bmp", "image/bmp"},         {".tif", "image/tiff"},  {".tiff", "image/tiff"},
      {".svg", "image/svg+xml"}, {".json", "application/json"}, {".txt", "text/plain"},  {".mp4", "video/mp4"},
      {".webm", "video/webm"}, {".mov", "video/quicktime"},   {".wav", "audio/x-wav"}, {".mp3", "audio/mpeg"},
      {".flac", "audio/flac"}, {".ogg", "audio/ogg"}};
  for (const auto& [e, t] : kTypes)
    if (ext == e) return t;
  return "application/octet-stream";
}

Response view(ServerState& state, const Request& request) {
  const auto raw_name = request.query_value("filename");
  if (!raw_name) return empty_response(404);
  auto [filename, annotated_type] = annotated_filepath(*raw_name);
  if (filename.empty() || filename[0] == '/' || filename.find("..") != std::string::npos) return empty_response(400);
  if (raw_name->find('\0') != std::string::npos || request.query_value("subfolder").value_or("").find('\0') != std::string::npos)
    return empty_response(400);  // a path ends at a NUL byte: "a.png\0.html" would serve a.png as .html
  const std::string type = annotated_type ? *annotated_type : request.query_value("type").value_or("output");
  const auto type_dir = dir_by_type(state, type);
  if (!type_dir) return empty_response(400);
  fs::path output_dir = *type_dir;
  if (const auto subfolder = request.query_value("subfolder")) {
    const fs::path full = join_abs(output_dir, *subfolder);
    if (!is_within(output_dir, full)) return empty_response(403);
    output_dir = full;
  }
  const std::string base = fs::path(filename).filename().string();
  const fs::path file = output_dir / base;
  std::error_code ec;
  if (base.empty() || !fs::is_regular_file(file, ec)) return empty_response(404);
  if (!real_within(*type_dir, file)) return empty_response(403);
  auto bytes = io::read_file(file.string());
  if (!bytes.is_ok()) return empty_response(404);
  Response r;
  r.content_type = content_type_for(base);
  const std::string ext = fs::path(base).extension().string();
  if (ext == ".html" || ext == ".htm" || ext == ".js" || ext == ".css") r.content_type = "application/octet-stream";
  r.body = std::move(*bytes);
  // A file name may hold control characters or quotes (an upload's name can): they would break the header.
  std::string shown = base;
  for (char& c : shown)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == '"' || c == '\\') c = '_';
  r.headers.emplace_back("Content-Disposition", "filename=\"" + shown + "\"");
  return r;
}

// os.path.splitext on a file name.
std::pair<std::string, std::string> splitext(const std::string& name) {
  const size_t dot = name.rfind('.');
  const size_t slash = name.rfind('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return {name, ""};
  const size_t start = slash == std::string::npos ? 0 : slash + 1;
  if (name.find_first_not_of('.', start) >= dot) return {name, ""};
  return {name.substr(0, dot), name.substr(dot)};
}

io::Image8 to_rgba(const io::Image8& in) {
  if (in.channels == 4) return in;
  io::Image8 out{in.width, in.height, 4, {}};
  out.pixels.resize(size_t(in.width) * in.height * 4);
  for (size_t p = 0; p < size_t(in.width) * in.height; ++p) {
    for (int c = 0; c < 3; ++c) out.pixels[p * 4 + c] = in.pixels[p * in.channels + (in.channels == 1 ? 0 : c)];
    out.pixels[p * 4 + 3] = 255;
  }
  return out;
}

// PIL: original.convert('RGBA').putalpha(mask.convert('RGBA').getchannel('A')), saved with the original's
// text chunks at compress_level 4. Errors name the file at fault.
Result<std::string> merge_mask(const ServerState& state, const FormPart* original_ref_part, const std::string& mask_bytes) {
  if (!original_ref_part) return Status::invalid_argument("upload/mask needs the form field original_ref");
  const ordered_json ref = ordered_json::parse(original_ref_part->data, nullptr, false);
  const auto field = [&](const char* name) -> const ordered_json* {
    const auto it = ref.find(name);
    return it == ref.end() ? nullptr : &*it;
  };
  if (!ref.is_object() || !field("filename") || !field("filename")->is_string())
    return Status::invalid_argument("original_ref must be JSON {\"filename\", \"subfolder\", \"type\"}");
  for (const char* name : {"type", "subfolder"}) {
    if (field(name) && !field(name)->is_string())
      return Status::invalid_argument(std::string("original_ref \"") + name + "\" must be a string, got " +
                                      field(name)->type_name());
  }
  auto [filename, annotated_type] = annotated_filepath(field("filename")->get<std::string>());
  if (filename.empty() || filename[0] == '/' || filename.find("..") != std::string::npos ||
      filename.find('\0') != std::string::npos)
    return Status::invalid_argument("original_ref filename '" + filename + "' is not a plain file name");
  const std::string type = annotated_type ? *annotated_type : field("type") ? field("type")->get<std::string>() : "output";
  const auto type_dir = dir_by_type(state, type);
  if (!type_dir) return Status::invalid_argument("original_ref type '" + type + "' is not output, input or temp");
  fs::path dir = *type_dir;
  const std::string subfolder = field("subfolder") ? field("subfolder")->get<std::string>() : std::string();
  if (!subfolder.empty()) {
    dir = join_abs(dir, subfolder);
    if (!is_within(*type_dir, dir)) return Status::invalid_argument("original_ref subfolder '" + subfolder + "' escapes " + type);
  }
  const fs::path file = dir / filename;
  if (!real_within(*type_dir, file)) return Status::invalid_argument("original_ref '" + filename + "' escapes " + type);
  ND_ASSIGN_OR_RETURN(std::string original_bytes, io::read_file(file.string()));
  // PIL's Image.open(...).convert('RGBA') in ComfyUI's image_upload: any PNG, JPEG or WebP; the first frame
  // of an animation; no EXIF transposition (that is LoadImage's); the result is saved as PNG either way.
  const io::DecodeOptions as_opened{.exif_transpose = false, .all_frames = false};
  ND_ASSIGN_OR_RETURN(io::DecodedImage original, io::decode_image(original_bytes, file.string(), as_opened));
  ND_ASSIGN_OR_RETURN(io::DecodedImage mask, io::decode_image(mask_bytes, "uploaded mask", as_opened));
  io::Image8 rgba = to_rgba(original.frames[0]);
  const io::Image8 mask_rgba = to_rgba(mask.frames[0]);
  if (mask_rgba.width != rgba.width || mask_rgba.height != rgba.height)
    return Status::invalid_argument("mask is " + std::to_string(mask_rgba.width) + "x" + std::to_string(mask_rgba.height) +
                                    ", original '" + filename + "' is " + std::to_string(rgba.width) + "x" +
                                    std::to_string(rgba.height));
  for (size_t p = 0; p < size_t(rgba.width) * rgba.height; ++p) rgba.pixels[p * 4 + 3] = mask_rgba.pixels[p * 4 + 3];
  return io::encode_png(rgba, original.text, 4);
}

Response upload(ServerState& state, const Request& request, bool mask) {
  auto parts = parse_multipart(request.header("content-type").value_or(""), request.body);
  if (!parts.is_ok()) return error_response(400, "invalid_multipart", parts.status().message());
  const FormPart* image = find_part(*parts, "image");
  if (!image || !image->filename) return error_response(400, "missing_image", "form field 'image' with a file is required");
  std::string filename = *image->filename;
  if (filename.empty()) return error_response(400, "missing_image", "the uploaded image has no file name");
  // The operating system's paths end at a NUL byte: such a name would be written and compared elsewhere.
  const FormPart* subfolder_field = find_part(*parts, "subfolder");
  if (filename.find('\0') != std::string::npos ||
      (subfolder_field && subfolder_field->data.find('\0') != std::string::npos))
    return error_response(400, "invalid_path", "the upload's file name or subfolder contains a NUL byte");
  const FormPart* type_part = find_part(*parts, "type");
  const std::string type = type_part ? type_part->data : "input";
  const auto upload_dir = dir_by_type(state, type);
  if (!upload_dir) return error_response(400, "invalid_type", "type '" + type + "' is not input, temp or output");
  const FormPart* subfolder_part = find_part(*parts, "subfolder");
  const std::string subfolder = subfolder_part ? subfolder_part->data : "";
  const fs::path folder = join_abs(*upload_dir, subfolder.empty() ? "." : subfolder);
  fs::path filepath = join_abs(folder, filename);
  if (!is_within(*upload_dir, filepath) || filepath == *upload_dir)
    return error_response(400, "invalid_path", "upload path '" + subfolder + "/" + filename + "' escapes " + type);
  std::error_code ec;
  fs::create_directories(filepath.parent_path(), ec);
  if (ec) return error_response(500, "io_error", "cannot create " + filepath.parent_path().string() + ": " + ec.message());
  if (!real_within(*upload_dir, filepath))
    return error_response(400, "invalid_path", "upload path '" + filename + "' escapes " + type + " through a link");

  const FormPart* overwrite = find_part(*parts, "overwrite");
  const bool overwrite_on = overwrite && (overwrite->data == "true" || overwrite->data == "1");
  bool duplicate = false;
  if (!overwrite_on) {
    const auto [stem, ext] = splitext(filename);
    for (int i = 1; fs::exists(filepath, ec); ++i) {
      auto existing = io::read_file(filepath.string());
      if (existing.is_ok() && *existing == image->data) {
        duplicate = true;
        break;
      }
      filename = stem + " (" + std::to_string(i) + ")" + ext;
      filepath = folder / filename;
    }
  }
  if (!duplicate) {
    std::string bytes = image->data;
    if (mask) {
      auto merged = merge_mask(state, find_part(*parts, "original_ref"), image->data);
      if (!merged.is_ok()) return error_response(400, "invalid_mask", merged.status().message());
      bytes = std::move(*merged);
    }
    const Status written = io::write_file_atomic(filepath.string(), bytes);
    if (!written.is_ok()) return error_response(500, "io_error", written.message());
  }
  return json_response({{"name", filename}, {"subfolder", subfolder}, {"type", type}});
}

}  // namespace

std::optional<Response> route_files(ServerState& state, const Request& request, const std::string& path) {
  if (path == "/view" && (request.method == "GET" || request.method == "HEAD")) return view(state, request);
  if (path == "/upload/image" && request.method == "POST") return upload(state, request, false);
  if (path == "/upload/mask" && request.method == "POST") return upload(state, request, true);
  return std::nullopt;
}

}  // namespace netdist::server
