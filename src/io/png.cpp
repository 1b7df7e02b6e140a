#include "io/png.h"

#include <fcntl.h>
#include <png.h>
#include <unistd.h>

#include <cerrno>
#include <csetjmp>
#include <cstring>
#include <fstream>
#include <sstream>

namespace netdist::io {

namespace {

struct WriteState {
  std::string out;
  std::string error;
};

void write_bytes(png_structp png, png_bytep data, png_size_t length) {
  auto* state = static_cast<WriteState*>(png_get_io_ptr(png));
  state->out.append(reinterpret_cast<const char*>(data), length);
}

void flush_nothing(png_structp) {}

void error_to_state(png_structp png, png_const_charp message) {
  auto* state = static_cast<std::string*>(png_get_error_ptr(png));
  if (state) *state = message;
  png_longjmp(png, 1);
}

void ignore_warning(png_structp, png_const_charp) {}

struct ReadState {
  const std::string* bytes;
  size_t offset = 0;
};

void read_bytes(png_structp png, png_bytep data, png_size_t length) {
  auto* state = static_cast<ReadState*>(png_get_io_ptr(png));
  if (state->offset + length > state->bytes->size()) png_error(png, "unexpected end of data");
  std::memcpy(data, state->bytes->data() + state->offset, length);
  state->offset += length;
}

// libpng reports errors by longjmp: the setjmp regions below hold only trivially destructible locals.
bool encode_with(png_structp png, png_infop info, const Image8& image, png_text* chunks, int chunk_count,
                 WriteState* state, int compress_level) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_write_fn(png, state, write_bytes, flush_nothing);
  png_set_compression_level(png, compress_level);
  const int color = image.channels == 1 ? PNG_COLOR_TYPE_GRAY
                    : image.channels == 3 ? PNG_COLOR_TYPE_RGB
                                          : PNG_COLOR_TYPE_RGB_ALPHA;
  png_set_IHDR(png, info, image.width, image.height, 8, color, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (chunk_count > 0) png_set_text(png, info, chunks, chunk_count);
  png_write_info(png, info);
  const size_t stride = size_t(image.width) * image.channels;
  for (int y = 0; y < image.height; ++y) png_write_row(png, const_cast<png_bytep>(image.pixels.data() + y * stride));
  png_write_end(png, nullptr);
  return true;
}

bool decode_header(png_structp png, png_infop info, ReadState* state, int* width, int* height, int* channels) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_read_fn(png, state, read_bytes);
  png_set_user_limits(png, 16384, 16384);
  png_read_info(png, info);
  png_set_expand(png);
  png_set_strip_16(png);
  png_set_packing(png);
  if (png_get_color_type(png, info) == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
  png_read_update_info(png, info);
  *width = static_cast<int>(png_get_image_width(png, info));
  *height = static_cast<int>(png_get_image_height(png, info));
  *channels = png_get_channels(png, info);
  return true;
}

bool decode_rows(png_structp png, png_infop info, png_bytep* rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_image(png, rows);
  png_read_end(png, info);
  return true;
}

}  // namespace

Result<std::string> encode_png(const Image8& image, const std::vector<PngText>& text, int compress_level) {
  if (image.width <= 0 || image.height <= 0) return Status::invalid_argument("PNG: image has no pixels");
  if (image.channels != 1 && image.channels != 3 && image.channels != 4) {
    return Status::invalid_argument("PNG: " + std::to_string(image.channels) + " channels (need 1, 3 or 4)");
  }
  if (image.pixels.size() != size_t(image.width) * image.height * image.channels) {
    return Status::invalid_argument("PNG: pixel buffer size does not match width*height*channels");
  }
  for (const PngText& t : text) {
    if (t.key.empty() || t.key.size() > 79) return Status::invalid_argument("PNG: text key '" + t.key + "' must be 1..79 chars");
  }
  std::string error;
  WriteState state;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &error, error_to_state, ignore_warning);
  if (!png) return Status::out_of_memory("PNG: cannot create encoder");
  png_infop info = png_create_info_struct(png);
  std::vector<png_text> chunks(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    chunks[i].compression = PNG_TEXT_COMPRESSION_NONE;
    chunks[i].key = const_cast<char*>(text[i].key.c_str());
    chunks[i].text = const_cast<char*>(text[i].value.c_str());
    chunks[i].text_length = text[i].value.size();
  }
  const bool ok = info && encode_with(png, info, image, chunks.data(), static_cast<int>(chunks.size()), &state,
                                      compress_level);
  if (!ok) {
    png_destroy_write_struct(&png, &info);
    return Status::internal("PNG encode failed: " + error);
  }
  png_destroy_write_struct(&png, &info);
  return std::move(state.out);
}

Result<std::pair<Image8, std::vector<PngText>>> decode_png(const std::string& bytes, const std::string& what) {
  if (bytes.size() < 8 || png_sig_cmp(reinterpret_cast<png_const_bytep>(bytes.data()), 0, 8) != 0) {
    return Status::invalid_argument(what + ": not a PNG file (bad signature)");
  }
  std::string error;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &error, error_to_state, ignore_warning);
  if (!png) return Status::out_of_memory(what + ": cannot create PNG decoder");
  png_infop info = png_create_info_struct(png);
  ReadState state{&bytes, 0};
  Image8 image;
  if (!info || !decode_header(png, info, &state, &image.width, &image.height, &image.channels)) {
    png_destroy_read_struct(&png, &info, nullptr);
    return Status::corruption(what + ": corrupt PNG: " + error);
  }
  image.pixels.resize(size_t(image.width) * image.height * image.channels);
  std::vector<png_bytep> rows(image.height);
  for (int y = 0; y < image.height; ++y) rows[y] = image.pixels.data() + size_t(y) * image.width * image.channels;
  if (!decode_rows(png, info, rows.data())) {
    png_destroy_read_struct(&png, &info, nullptr);
    return Status::corruption(what + ": corrupt PNG: " + error);
  }
  std::vector<PngText> text;
  png_textp chunks = nullptr;
  int count = png_get_text(png, info, &chunks, nullptr);
  for (int i = 0; i < count; ++i) {
    text.push_back({chunks[i].key, std::string(chunks[i].text, chunks[i].text_length)});
  }
  png_destroy_read_struct(&png, &info, nullptr);
  return std::make_pair(std::move(image), std::move(text));
}


}  // namespace netdist::io
