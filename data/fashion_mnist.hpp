// Fashion-MNIST reader: the four IDX files, gzip-compressed, as Debian's
// dataset-fashion-mnist ships them (default directory /usr/share/datasets/fashion-mnist).
//
// Contract: load_fashion_mnist(dir) reads train-{images-idx3,labels-idx1}-ubyte.gz and
// t10k-{...}.gz from `dir`, checks each file's magic number, counts and image size (28x28),
// that image and label counts agree and that every label is in [0, 10), and returns the
// pixel bytes as they are (dataset::pixels: features in [0, 1], a quarter of the memory of
// floats). Any missing, truncated or corrupt file gives a one-line error naming
// the file and what is wrong (never a size read from a damaged file's gzip trailer); nothing
// throws. fashion_mnist_footprint(dir) makes the checks that need no decompression of an
// intact file (headers, and gzip trailers against them) and gives the memory the loaded sets
// take. Thread-safe (no shared state).
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

/// "" if `dir` is a directory, else a one-line message naming it and saying what it is not:
/// "does not exist", "is not a directory" (a file given for the directory) or why it
/// cannot be examined. The first check of load_fashion_mnist(dir).
std::string data_directory_problem(const std::string& dir);

/// The bytes that load_fashion_mnist(dir) holds once loaded (pixel bytes and int labels of
/// both sets), from the IDX headers, checked against each gzip file's trailer (its
/// decompressed size, mod 4 GiB): what each process that loads `dir` needs for its data.
/// Only the headers are decompressed, unless a trailer disagrees with its header: a
/// truncated file ends in arbitrary bytes there, so that file is decompressed to find out,
/// and its problem is the error (the loader's message), never a size. Missing directories
/// and files, wrong magic numbers or image sizes and image and label counts that differ are
/// errors too. Not seen: damage inside a stream whose trailer agrees, a label out of range
/// (the loader finds those).
outcome<uint64_t> fashion_mnist_footprint(const std::string& dir);

/// Reads one pair of IDX files (images, labels) into a 10-class dataset.
outcome<dataset> load_idx_pair(const std::string& images_path, const std::string& labels_path);

} // namespace psgd::data
