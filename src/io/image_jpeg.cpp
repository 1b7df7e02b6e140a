// JPEG through libjpeg(-turbo)'s classic API, as PIL's JpegDecode does. Debian's and Ubuntu's libjpeg is
// libjpeg-turbo, the library PIL's JPEG plugin also uses; with the same settings (PIL leaves libjpeg's
// defaults: the ISLOW integer DCT and fancy upsampling, no scaling) both give the same pixels exactly.
#include "io/image_codecs.h"

#if NETDIST_HAVE_JPEG

#include <csetjmp>
#include <cstdio>  // jpeglib.h needs FILE
#include <cstring>

#include <jpeglib.h>

namespace netdist::io::detail {

namespace {

// libjpeg's default error handler prints and calls exit(); this one formats the message and longjmps back
// into the setjmp of the call that failed. Warnings (corrupt entropy data that libjpeg skips) are ignored,
// as PIL ignores them.
struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void on_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

void on_emit(j_common_ptr, int) {}
void on_output(j_common_ptr) {}

// A memory source that records reaching the end of the data (a truncated file) and then feeds an EOI
// marker, as jpeg_mem_src does, so that libjpeg stops cleanly.
struct JpegSource {
  jpeg_source_mgr mgr;
  bool hit_end;
};

const JOCTET kEoi[2] = {0xFF, JPEG_EOI};

void src_init(j_decompress_ptr) {}
boolean src_fill(j_decompress_ptr cinfo) {
  auto* src = reinterpret_cast<JpegSource*>(cinfo->src);
  src->hit_end = true;
  src->mgr.next_input_byte = kEoi;
  src->mgr.bytes_in_buffer = 2;
  return TRUE;
}
void src_skip(j_decompress_ptr cinfo, long count) {
  auto* src = reinterpret_cast<JpegSource*>(cinfo->src);
  if (count <= 0) return;
  if (size_t(count) > src->mgr.bytes_in_buffer) {
    src_fill(cinfo);
    return;
  }
  src->mgr.next_input_byte += count;
  src->mgr.bytes_in_buffer -= size_t(count);
}
void src_term(j_decompress_ptr) {}

// One decompressor with its error handler and source; destroyed on every path.
struct Jpeg {
  jpeg_decompress_struct cinfo;
  JpegError err;
  JpegSource src;

  explicit Jpeg(std::string_view bytes) {
    std::memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = on_error;
    err.mgr.emit_message = on_emit;
    err.mgr.output_message = on_output;
    err.message[0] = '\0';
    src = JpegSource{};
    src.mgr.init_source = src_init;
    src.mgr.fill_input_buffer = src_fill;
    src.mgr.skip_input_data = src_skip;
    src.mgr.resync_to_restart = jpeg_resync_to_restart;
    src.mgr.term_source = src_term;
    src.mgr.next_input_byte = reinterpret_cast<const JOCTET*>(bytes.data());
    src.mgr.bytes_in_buffer = bytes.size();
  }
  ~Jpeg() { jpeg_destroy_decompress(&cinfo); }
  Jpeg(const Jpeg&) = delete;
  Jpeg& operator=(const Jpeg&) = delete;
};

// The setjmp regions: no locals with destructors, so a longjmp out of libjpeg skips none.
bool read_headers(Jpeg* j) {
  if (setjmp(j->err.jump)) return false;
  jpeg_create_decompress(&j->cinfo);
  j->cinfo.src = &j->src.mgr;
  jpeg_save_markers(&j->cinfo, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(&j->cinfo, TRUE);
  return true;
}

bool read_pixels(Jpeg* j, uint8_t* out, size_t stride, bool* ended_early) {
  if (setjmp(j->err.jump)) return false;
  // PIL's choice of output colour space by layer count (L, RGB, CMYK); libjpeg's default decoding
  // parameters (JDCT_ISLOW, fancy upsampling, no scaling, no dithering) stay as PIL leaves them.
  j->cinfo.out_color_space = j->cinfo.num_components == 1   ? JCS_GRAYSCALE
                             : j->cinfo.num_components == 3 ? JCS_RGB
                                                            : JCS_CMYK;
  j->cinfo.dct_method = JDCT_ISLOW;
  j->cinfo.do_fancy_upsampling = TRUE;
  jpeg_start_decompress(&j->cinfo);
  while (j->cinfo.output_scanline < j->cinfo.output_height) {
    JSAMPROW row = out + size_t(j->cinfo.output_scanline) * stride;
    jpeg_read_scanlines(&j->cinfo, &row, 1);
  }
  *ended_early = j->src.hit_end;
  return true;
}

Status failed(const std::string& what, const Jpeg& j) {
  if (j.src.hit_end) return Status::corruption(what + ": JPEG file is truncated (" + j.err.message + ")");
  return Status::corruption(what + ": corrupt JPEG: " + j.err.message);
}

Result<ImageHeader> header_from(Jpeg& j, std::string_view bytes, const std::string& what,
                                bool* truncated_header) {
  if (!read_headers(&j)) {
    *truncated_header = j.src.hit_end;
    return failed(what, j);
  }
  const int layers = j.cinfo.num_components;
  if (layers != 1 && layers != 3 && layers != 4)
    return Status::corruption(what + ": JPEG with " + std::to_string(layers) +
                              " layers (PIL reads 1, 3 or 4)");
  ND_RETURN_IF_ERROR(check_image_size(what, "JPEG", j.cinfo.image_width, j.cinfo.image_height, 1));
  ImageHeader h;
  h.format = ImageFormat::kJpeg;
  h.width = int(j.cinfo.image_width);
  h.height = int(j.cinfo.image_height);
  return h;
}

// PIL's JPEG plugin keeps the first APP1 segment that starts with "Exif\0" as info["exif"].
int orientation_of(const Jpeg& j) {
  for (jpeg_saved_marker_ptr m = j.cinfo.marker_list; m; m = m->next) {
    if (m->marker != JPEG_APP0 + 1 || m->data_length < 5 || std::memcmp(m->data, "Exif\0", 5) != 0) continue;
    return exif_orientation(std::string_view(reinterpret_cast<const char*>(m->data), m->data_length));
  }
  return 1;
}

// PIL reads CMYK JPEGs inverted ("CMYK;I", Adobe's convention) and converts to RGB per channel as
// nk - nk * ink / 255 with nk = 255 - K (Convert.c cmyk2rgb, its MULDIV255 rounding).
uint8_t cmyk_channel(uint8_t stored_ink, uint8_t stored_black) {
  const int ink = 255 - stored_ink, nk = stored_black;
  const int t = ink * nk + 128;
  const int v = nk - (((t >> 8) + t) >> 8);
  return uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
}

Image8 to_rgb(const Image8& in) {
  if (in.channels == 3) return in;
  const size_t n = size_t(in.width) * in.height;
  Image8 out{in.width, in.height, 3, std::vector<uint8_t>(n * 3)};
  for (size_t p = 0; p < n; ++p) {
    const uint8_t* s = &in.pixels[p * in.channels];
    for (int c = 0; c < 3; ++c) out.pixels[p * 3 + c] = in.channels == 1 ? s[0] : cmyk_channel(s[c], s[3]);
  }
  return out;
}

}  // namespace

bool jpeg_supported() { return true; }

Result<ImageHeader> jpeg_header(std::string_view bytes, const std::string& what, bool* truncated_header) {
  Jpeg j(bytes);
  return header_from(j, bytes, what, truncated_header);
}

Result<DecodedImage> jpeg_decode(std::string_view bytes, const std::string& what,
                                 const DecodeOptions& options) {
  Jpeg j(bytes);
  bool truncated_header = false;
  ND_ASSIGN_OR_RETURN(ImageHeader h, header_from(j, bytes, what, &truncated_header));
  Image8 raw{h.width, h.height, j.cinfo.num_components, {}};
  raw.pixels.resize(size_t(h.width) * h.height * raw.channels);
  bool ended_early = false;
  if (!read_pixels(&j, raw.pixels.data(), size_t(h.width) * raw.channels, &ended_early))
    return failed(what, j);
  if (ended_early || int(j.cinfo.output_components) != raw.channels)
    return Status::corruption(what + ": JPEG file is truncated (the image data ends early)");
  DecodedImage out;
  out.format = ImageFormat::kJpeg;
  Image8 rgb = to_rgb(raw);
  out.frames.push_back(options.exif_transpose ? apply_exif_orientation(rgb, orientation_of(j))
                                              : std::move(rgb));
  return out;
}

}  // namespace netdist::io::detail

#else  // !NETDIST_HAVE_JPEG

namespace netdist::io::detail {

bool jpeg_supported() { return false; }

Result<ImageHeader> jpeg_header(std::string_view, const std::string& what, bool*) {
  return Status::unsupported(what + ": this netdist was built without JPEG support");
}

Result<DecodedImage> jpeg_decode(std::string_view, const std::string& what, const DecodeOptions&) {
  return Status::unsupported(what + ": this netdist was built without JPEG support");
}

}  // namespace netdist::io::detail

#endif
