// WebP through libwebp's animation decoder (libwebpdemux), as PIL's WebP plugin reads every WebP file,
// still or animated: frames composited on the canvas in RGBA, the mode RGBA when WebPGetFeatures reports
// alpha and RGB otherwise, the EXIF chunk as info["exif"].
#include "io/image_codecs.h"

#if NETDIST_HAVE_WEBP

#include <cstring>
#include <memory>

#include <webp/decode.h>
#include <webp/demux.h>

namespace netdist::io::detail {

namespace {

struct AnimDecoderDelete {
  void operator()(WebPAnimDecoder* d) const { WebPAnimDecoderDelete(d); }
};

const char* status_text(VP8StatusCode s) {
  switch (s) {
    case VP8_STATUS_OUT_OF_MEMORY:
      return "out of memory";
    case VP8_STATUS_INVALID_PARAM:
      return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR:
      return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE:
      return "unsupported feature";
    case VP8_STATUS_SUSPENDED:
      return "suspended";
    case VP8_STATUS_USER_ABORT:
      return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA:
      return "not enough data";
    case VP8_STATUS_OK:
      break;
  }
  return "ok";
}

int orientation_of(const WebPAnimDecoder* dec) {
  const WebPDemuxer* demux = WebPAnimDecoderGetDemuxer(dec);
  WebPChunkIterator it;
  if (!demux || !WebPDemuxGetChunk(demux, "EXIF", 1, &it)) return 1;
  const int orientation =
      exif_orientation(std::string_view(reinterpret_cast<const char*>(it.chunk.bytes), it.chunk.size));
  WebPDemuxReleaseChunkIterator(&it);
  return orientation;
}

}  // namespace

bool webp_supported() { return true; }

Result<ImageHeader> webp_header(std::string_view bytes, const std::string& what, bool* truncated_header) {
  WebPBitstreamFeatures f;
  const VP8StatusCode s = WebPGetFeatures(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), &f);
  if (s == VP8_STATUS_NOT_ENOUGH_DATA) {
    *truncated_header = true;
    return Status::corruption(what + ": WebP file is truncated (it ends inside its header)");
  }
  if (s != VP8_STATUS_OK) return Status::corruption(what + ": corrupt WebP header: " + status_text(s));
  ND_RETURN_IF_ERROR(check_image_size(what, "WebP", f.width, f.height, 1));
  ImageHeader h;
  h.format = ImageFormat::kWebp;
  h.width = f.width;
  h.height = f.height;
  h.animated = f.has_animation != 0;
  return h;
}

Result<DecodedImage> webp_decode(std::string_view bytes, const std::string& what,
                                 const DecodeOptions& options) {
  bool truncated_header = false;
  ND_ASSIGN_OR_RETURN(ImageHeader header, webp_header(bytes, what, &truncated_header));
  (void)header;
  WebPBitstreamFeatures f;
  const bool has_alpha =
      WebPGetFeatures(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), &f) != VP8_STATUS_OK ||
      f.has_alpha;
  WebPAnimDecoderOptions opts;
  if (!WebPAnimDecoderOptionsInit(&opts)) return Status::internal(what + ": libwebp version mismatch");
  opts.color_mode = MODE_RGBA;
  opts.use_threads = 0;
  const WebPData data{reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()};
  std::unique_ptr<WebPAnimDecoder, AnimDecoderDelete> dec(WebPAnimDecoderNew(&data, &opts));
  if (!dec) return Status::corruption(what + ": corrupt or truncated WebP file (libwebp cannot demux it)");
  WebPAnimInfo info;
  if (!WebPAnimDecoderGetInfo(dec.get(), &info) || info.frame_count == 0)
    return Status::corruption(what + ": corrupt WebP file (no frames)");
  const int w = int(info.canvas_width), h = int(info.canvas_height);
  const long long frames = options.all_frames ? info.frame_count : 1;
  ND_RETURN_IF_ERROR(check_image_size(what, "WebP", w, h, frames));
  const int orientation = options.exif_transpose ? orientation_of(dec.get()) : 1;
  DecodedImage out;
  out.format = ImageFormat::kWebp;
  const int channels = has_alpha ? 4 : 3;
  const size_t n = size_t(w) * h;
  for (long long i = 0; i < frames; ++i) {
    uint8_t* rgba = nullptr;
    int timestamp = 0;
    if (!WebPAnimDecoderGetNext(dec.get(), &rgba, &timestamp)) {
      return Status::corruption(what + ": corrupt WebP file: frame " + std::to_string(i + 1) + " of " +
                                std::to_string(info.frame_count) + " cannot be decoded");
    }
    Image8 frame{w, h, channels, std::vector<uint8_t>(n * channels)};
    if (channels == 4) {
      std::memcpy(frame.pixels.data(), rgba, n * 4);
    } else {
      for (size_t p = 0; p < n; ++p) std::memcpy(&frame.pixels[p * 3], rgba + p * 4, 3);
    }
    out.frames.push_back(orientation == 1 ? std::move(frame) : apply_exif_orientation(frame, orientation));
  }
  return out;
}

}  // namespace netdist::io::detail

#else  // !NETDIST_HAVE_WEBP

namespace netdist::io::detail {

bool webp_supported() { return false; }

Result<ImageHeader> webp_header(std::string_view, const std::string& what, bool*) {
  return Status::unsupported(what + ": this netdist was built without WebP support");
}

Result<DecodedImage> webp_decode(std::string_view, const std::string& what, const DecodeOptions&) {
  return Status::unsupported(what + ": this netdist was built without WebP support");
}

}  // namespace netdist::io::detail

#endif
