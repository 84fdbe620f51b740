// The lab's augmentation recipes, on data scaled to [-1, 1] (value range stated explicitly;
// see README "Augmentation").
#pragma once

#include "data/augment/augment.h"

namespace kiln {

// Task 2: RandomRotation(0.05), RandomTranslation(0.05, 0.05), RandomBrightness(0.1, (-1, 1)).
Augmentation task2_augmentation();
// Task 3: RandomRotation(0.4), RandomTranslation(0.1, 0.1), RandomBrightness(0.15, (-1, 1)),
// RandomFlip(horizontal_and_vertical).
Augmentation task3_augmentation();

}  // namespace kiln
