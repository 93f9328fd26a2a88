// Fashion-MNIST reader: the four IDX files, gzip-compressed, as Debian's
// dataset-fashion-mnist ships them (default directory /usr/share/datasets/fashion-mnist).
//
// Contract: load_fashion_mnist(dir) reads train-{images-idx3,labels-idx1}-ubyte.gz and
// t10k-{...}.gz from `dir`, checks each file's magic number, counts and image size (28x28),
// that image and label counts agree and that every label is in [0, 10), and returns pixels
// scaled to [0, 1]. Any missing, truncated or corrupt file gives a one-line error naming
// the file and what is wrong; nothing throws. Thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <string>

#include "data/dataset.hpp"
#include "data/outcome.hpp"

namespace psgd::data {

/// Where Debian's dataset-fashion-mnist package puts the files.
inline constexpr const char* default_fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";

/// Reads the training set (60,000 rows) and the test set (10,000 rows).
outcome<split> load_fashion_mnist(const std::string& dir);

/// The bytes that load_fashion_mnist(dir) holds once loaded (float pixels and int labels of
/// both sets), from the files' sizes alone: nothing is decompressed. What each process that
/// loads `dir` needs for its data. A file that cannot be read counts 0.
uint64_t fashion_mnist_memory_bytes(const std::string& dir);

/// Reads one pair of IDX files (images, labels) into a 10-class dataset.
outcome<dataset> load_idx_pair(const std::string& images_path, const std::string& labels_path);

} // namespace psgd::data
