// A second, independent forward path for the lab's Task 1 CNN, written the way the lab's
// hand-made cnn.py was: one image at a time, direct loops over plain std::vector<float>, no
// GEMM, no autograd, no kiln ops, and its own reader for the model file's weights (the HDF5 C
// API, while kiln writes it with the C++ API). task1 runs the trained weights through both paths;
// if kiln's im2col/sgemm convolution, pooling, flatten order or softmax were wrong, the two
// would disagree.
//
// Layouts are Keras': an image is H*W*C floats (HWC, channels fastest), a conv kernel is
// [kh,kw,C_in,C_out] applied as cross-correlation (the lab's scipy convolve2d needed the kernel
// flipped to match), a dense kernel is [in,out]. Sums are accumulated in double.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kiln::reference {

enum class Act { Linear, Relu, Softmax };

// x: [h,w,c], kernel: [kh,kw,c,f], bias: [f] -> [h,w,f]; stride 1, 'same' padding as
// TensorFlow pads (the odd pixel of an even kernel goes to the bottom/right).
std::vector<float> conv2d_same(const std::vector<float>& x, int h, int w, int c,
                               const std::vector<float>& kernel, int kh, int kw, int f,
                               const std::vector<float>& bias, Act act);
// x: [h,w,c] -> [h/2,w/2,c]: the maximum of each 2x2 block (an odd last row/column is dropped).
std::vector<float> max_pool_2x2(const std::vector<float>& x, int h, int w, int c);
// x: [h,w,c] -> [h*w*c] in the same HWC order (Keras' Flatten of NHWC data).
std::vector<float> flatten(const std::vector<float>& x);
// x: [in], kernel: [in,out], bias: [out] -> [out].
std::vector<float> dense(const std::vector<float>& x, const std::vector<float>& kernel, int in,
                         int out, const std::vector<float>& bias, Act act);
// In place: max(0, v) for Relu; exp(v - max) / sum for Softmax; nothing for Linear.
void activate(std::vector<float>& v, Act act);

// One parameter of a model file.
struct Array {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// Reads the named parameters (/parameters/<name>) of a kiln model file (kiln_format
// "kiln-model", version 1; layers/io/model_file.h). Throws std::runtime_error naming the file
// and the dataset for a missing file, a wrong format or version attribute, or a missing dataset.
std::map<std::string, Array> read_weights(const std::string& path, const std::vector<std::string>& names);

// The lab's Task 1 network: conv 3x3 (relu) -> pool -> conv 3x3 (relu) -> pool -> flatten ->
// dense (softmax), with kiln's layer names conv2d, conv2d_1, dense.
class Task1Cnn {
 public:
  // Shapes come from the file; throws std::runtime_error naming the file when they do not fit
  // together.
  static Task1Cnn load(const std::string& path, int height = 28, int width = 28);
  // image: [height,width,channels] -> class probabilities [classes].
  std::vector<float> forward(const float* image) const;

  int height = 0, width = 0, channels = 0, classes = 0;

 private:
  std::vector<float> k1, b1, k2, b2, k3, b3;
  int f1 = 0, f2 = 0;
};

struct Figures {
  double loss = 0, accuracy = 0;
};

// images: n x [h,w,c] floats back to back, labels: n class indices -> mean categorical
// cross-entropy (probabilities clipped to [1e-7, 1 - 1e-7], Keras' clipping) and accuracy
// (first maximum wins). Probabilities of every image, [n,classes], go to *probs when given.
// Images are spread over OpenMP threads; every figure is summed in a fixed order.
Figures evaluate(const Task1Cnn& net, const float* images, int64_t n,
                 const std::vector<int32_t>& labels, std::vector<float>* probs = nullptr);

}  // namespace kiln::reference
