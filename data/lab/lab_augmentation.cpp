#include "data/lab/lab_augmentation.h"

namespace kiln {

Augmentation task2_augmentation() {
  return Augmentation(RandomRotation(0.05f), RandomTranslation(0.05f, 0.05f),
                      RandomBrightness(0.1f, {-1.0f, 1.0f}));
}

Augmentation task3_augmentation() {
  return Augmentation(RandomRotation(0.4f), RandomTranslation(0.1f, 0.1f),
                      RandomBrightness(0.15f, {-1.0f, 1.0f}),
                      RandomFlip(FlipMode::horizontal_and_vertical));
}

}  // namespace kiln
