#include "core/io/png_image.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "core/io/write_atomically.h"

namespace kiln {

// --- canvas ---------------------------------------------------------------------------------

RgbCanvas::RgbCanvas(int w, int h, Rgb background) : width(w), height(h) {
  check_arg(w >= 0 && h >= 0, "RgbCanvas",
            "negative size " + std::to_string(w) + "x" + std::to_string(h));
  pixels.resize(static_cast<size_t>(w) * static_cast<size_t>(h) * 3);
  for (size_t i = 0; i < pixels.size(); i += 3) {
    pixels[i] = background.r;
    pixels[i + 1] = background.g;
    pixels[i + 2] = background.b;
  }
}

void RgbCanvas::set_pixel(int x, int y, Rgb color) {
  if (!contains(x, y)) return;
  uint8_t* p = &pixels[(static_cast<size_t>(y) * static_cast<size_t>(width) + x) * 3];
  p[0] = color.r;
  p[1] = color.g;
  p[2] = color.b;
}

Rgb RgbCanvas::pixel(int x, int y) const {
  if (!contains(x, y)) {
    throw std::out_of_range("RgbCanvas::pixel: (" + std::to_string(x) + ", " +
                            std::to_string(y) + ") outside a " + std::to_string(width) + "x" +
                            std::to_string(height) + " canvas");
  }
  const uint8_t* p = &pixels[(static_cast<size_t>(y) * static_cast<size_t>(width) + x) * 3];
  return {p[0], p[1], p[2]};
}

void RgbCanvas::fill_rect(int x, int y, int w, int h, Rgb color) {
  const int x_end = std::min(width, x + std::max(w, 0));
  const int y_end = std::min(height, y + std::max(h, 0));
  for (int yy = std::max(y, 0); yy < y_end; ++yy) {
    for (int xx = std::max(x, 0); xx < x_end; ++xx) set_pixel(xx, yy, color);
  }
}

void RgbCanvas::draw_line(int x0, int y0, int x1, int y1, Rgb color) {
  // Integer Bresenham over all octants: err tracks the distance to the ideal line.
  const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
  const int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
  int err = dx + dy;
  while (true) {
    set_pixel(x0, y0, color);
    if (x0 == x1 && y0 == y1) break;
    const int e2 = 2 * err;
    if (e2 >= dy) {
      err += dy;
      x0 += sx;
    }
    if (e2 <= dx) {
      err += dx;
      y0 += sy;
    }
  }
}

// --- files ----------------------------------------------------------------------------------

namespace {

// Checks the arguments of write_png / encode_png; `what` names the call (and the file).
void check_pixels(const std::string& what, int width, int height, int channels, const uint8_t* pixels) {
  check_arg(channels == 1 || channels == 3, what.c_str(),
            "channels must be 1 (gray) or 3 (RGB), got " + std::to_string(channels));
  check_arg(width > 0 && height > 0, what.c_str(),
            "image size " + std::to_string(width) + "x" + std::to_string(height) + " is empty");
  check_arg(pixels != nullptr, what.c_str(), "no pixel data");
}

void check_canvas(const std::string& what, const RgbCanvas& canvas) {
  check_arg(canvas.pixels.size() ==
                static_cast<size_t>(canvas.width) * static_cast<size_t>(canvas.height) * 3,
            what.c_str(), "canvas pixel buffer does not match its size");
}

// The PNG bytes in `bytes`; on failure, libpng's message (else an empty string).
std::string encode(int width, int height, int channels, const uint8_t* pixels, std::string& bytes) {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  // The first call measures, the second fills the buffer.
  png_alloc_size_t size = 0;
  const auto stride = static_cast<png_int_32>(width * channels);
  bool ok = png_image_write_to_memory(&image, nullptr, &size, 0, pixels, stride, nullptr) != 0;
  if (ok) {
    bytes.assign(size, '\0');
    ok = png_image_write_to_memory(&image, bytes.data(), &size, 0, pixels, stride, nullptr) != 0;
  }
  const std::string message = ok ? "" : image.message;
  png_image_free(&image);
  if (ok) bytes.resize(size);
  return message;
}

}  // namespace

void write_png(const std::string& path, int width, int height, int channels,
               const uint8_t* pixels) {
  check_pixels("write_png '" + path + "'", width, height, channels, pixels);
  // Encoded in memory, then written by the one atomic writer: libpng's own file output goes
  // through stdio, whose failures would surface later and less clearly.
  std::string bytes;
  const std::string error = encode(width, height, channels, pixels, bytes);
  if (!error.empty()) throw FileError(path, "write_png: cannot encode it: " + error);
  write_bytes_atomically(path, bytes);
}

void write_png(const std::string& path, const RgbCanvas& canvas) {
  check_canvas("write_png '" + path + "'", canvas);
  write_png(path, canvas.width, canvas.height, 3, canvas.pixels.data());
}

std::string encode_png(int width, int height, int channels, const uint8_t* pixels) {
  check_pixels("encode_png", width, height, channels, pixels);
  std::string bytes;
  const std::string error = encode(width, height, channels, pixels, bytes);
  if (!error.empty())
    throw std::runtime_error("encode_png: cannot encode a " + std::to_string(width) + "x" +
                             std::to_string(height) + " image: " + error);
  return bytes;
}

std::string encode_png(const RgbCanvas& canvas) {
  check_canvas("encode_png", canvas);
  return encode_png(canvas.width, canvas.height, 3, canvas.pixels.data());
}

PngImage read_png(const std::string& path) {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&image, path.c_str())) {
    const std::string message = image.message;
    png_image_free(&image);
    throw std::runtime_error("read_png: cannot read '" + path + "': " + message);
  }
  const bool color = (image.format & PNG_FORMAT_FLAG_COLOR) != 0;
  image.format = color ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  PngImage out;
  out.width = static_cast<int>(image.width);
  out.height = static_cast<int>(image.height);
  out.channels = color ? 3 : 1;
  out.pixels.resize(PNG_IMAGE_SIZE(image));
  // Alpha, where the file has any, is composed onto white.
  png_color background{255, 255, 255};
  if (!png_image_finish_read(&image, &background, out.pixels.data(), 0, nullptr)) {
    const std::string message = image.message;
    png_image_free(&image);
    throw std::runtime_error("read_png: cannot decode '" + path + "': " + message);
  }
  return out;
}

// --- image grids ----------------------------------------------------------------------------

RgbCanvas image_grid(const Tensor& images, const ImageGridOptions& options) {
  check_arg(images.defined() && images.dim() == 4, "image_grid",
            "expected images [N,H,W,C], got " +
                (images.defined() ? shape_str(images.shape()) : std::string("undefined")));
  const int64_t n = images.size(0), h = images.size(1), w = images.size(2), c = images.size(3);
  check_arg(c == 1 || c == 3, "image_grid",
            "images " + shape_str(images.shape()) + " need 1 (gray) or 3 (RGB) channels");
  check_arg(options.cols > 0 && options.scale > 0, "image_grid",
            "cols and scale must be positive, got cols " + std::to_string(options.cols) +
                ", scale " + std::to_string(options.scale));
  const float lo = options.value_range.first, hi = options.value_range.second;
  check_arg(lo < hi, "image_grid", "value_range lower bound must be below the upper bound");

  const int64_t cols = std::min<int64_t>(options.cols, std::max<int64_t>(n, 1));
  const int64_t rows = (n + cols - 1) / cols;
  const int64_t cell_w = w * options.scale, cell_h = h * options.scale;
  const int64_t width = cols * cell_w + (cols - 1);
  const int64_t height = std::max<int64_t>(rows * cell_h + (rows - 1), 1);
  check_arg(width <= (1 << 24) && height <= (1 << 24), "image_grid",
            "grid of " + std::to_string(width) + "x" + std::to_string(height) + " is too large");
  RgbCanvas canvas(static_cast<int>(std::max<int64_t>(width, 1)), static_cast<int>(height),
                   options.separator);

  const float to_byte = 255.0f / (hi - lo);
  auto byte = [&](float v) {
    const float scaled = std::round((v - lo) * to_byte);
    return static_cast<uint8_t>(std::clamp(std::isnan(scaled) ? 0.0f : scaled, 0.0f, 255.0f));
  };
  const float* data = images.data();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t x0 = (i % cols) * (cell_w + 1), y0 = (i / cols) * (cell_h + 1);
    const float* img = data + i * h * w * c;
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        const float* p = img + (y * w + x) * c;
        const Rgb color = c == 3 ? Rgb{byte(p[0]), byte(p[1]), byte(p[2])}
                                 : Rgb{byte(p[0]), byte(p[0]), byte(p[0])};
        canvas.fill_rect(static_cast<int>(x0 + x * options.scale),
                         static_cast<int>(y0 + y * options.scale), options.scale, options.scale,
                         color);
      }
    }
  }
  return canvas;
}

void write_image_grid_png(const std::string& path, const Tensor& images,
                          const ImageGridOptions& options) {
  write_png(path, image_grid(images, options));
}

}  // namespace kiln
