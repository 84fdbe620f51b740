// 8-bit PNG files (libpng): an RGB canvas with a few drawing helpers (for image grids and
// training-curve plots), a writer that never leaves a half-written file, and a small reader.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace kiln {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb&) const = default;
};

// width x height RGB pixels, row 0 at the top, 3 bytes per pixel.
struct RgbCanvas {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;

  RgbCanvas() = default;
  RgbCanvas(int width, int height, Rgb background = {255, 255, 255});
  bool contains(int x, int y) const { return x >= 0 && y >= 0 && x < width && y < height; }
  // Points outside the canvas are ignored, so shapes may run off the edge.
  void set_pixel(int x, int y, Rgb color);
  Rgb pixel(int x, int y) const;  // throws std::out_of_range outside the canvas
  // The w x h block whose top-left corner is (x, y), clipped to the canvas.
  void fill_rect(int x, int y, int w, int h, Rgb color);
  // 1-pixel line from (x0, y0) to (x1, y1), both ends included (Bresenham), clipped.
  void draw_line(int x0, int y0, int x1, int y1, Rgb color);
};

// A decoded PNG: channels is 1 (gray) or 3 (RGB), rows top to bottom.
struct PngImage {
  int width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;  // height * width * channels
};

// pixels: height rows of width * channels bytes, channels 1 (gray) or 3 (RGB) -> an 8-bit
// PNG at path. Written to a temporary file beside path, then renamed over it, so an error
// leaves no partial file. Throws std::runtime_error naming the file.
void write_png(const std::string& path, int width, int height, int channels,
               const uint8_t* pixels);
void write_png(const std::string& path, const RgbCanvas& canvas);
// The same PNG as write_png, returned as the file's bytes (for a format that embeds PNGs, such
// as TensorBoard's event files). Throws std::invalid_argument for a bad size or channel count.
std::string encode_png(int width, int height, int channels, const uint8_t* pixels);
std::string encode_png(const RgbCanvas& canvas);
// Reads any PNG, converted to 8-bit gray (if the file has no colour) or RGB; alpha is dropped.
PngImage read_png(const std::string& path);

struct ImageGridOptions {
  int cols = 8;                                // images per row; rows = ceil(N / cols)
  int scale = 1;                               // each image pixel becomes scale x scale
  std::pair<float, float> value_range{-1, 1};  // maps to 0..255, values outside are clipped
  Rgb separator{255, 255, 255};                // 1-pixel lines between cells, empty cells
};
// images: [N,H,W,C], C 1 (gray) or 3 (RGB) -> a canvas of rows x cols cells of
// (H*scale) x (W*scale) pixels, filled row by row.
RgbCanvas image_grid(const Tensor& images, const ImageGridOptions& options = {});
void write_image_grid_png(const std::string& path, const Tensor& images,
                          const ImageGridOptions& options = {});

}  // namespace kiln
