//! The readers accept well-formed files and refuse broken ones with a
//! message naming the file and what is wrong.

mod common;

use std::path::Path;

use widesweep_arch::Dataset;
use widesweep_worker::data::{self, LoadOptions, cifar, idx};

fn loose() -> LoadOptions {
    LoadOptions { official_sizes: false }
}

#[test]
fn synthetic_cifar10_loads_with_labels_and_pixels() {
    let dir = tempfile::tempdir().unwrap();
    common::write_cifar10(dir.path(), 20, 30);
    let splits = data::load(Dataset::Cifar10, dir.path(), loose()).unwrap();
    assert_eq!((splits.train.len(), splits.test.len()), (100, 30));
    assert_eq!(splits.train.channels, 3);
    assert_eq!(&splits.train.labels[..3], &[0, 1, 2]);
    let raw = common::cifar10_bytes(20, 1);
    assert_eq!(splits.train.image(1), &raw[3073 + 1..2 * 3073]);
}

#[test]
fn cifar_truncated_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data_batch_1.bin");
    let bytes = common::cifar10_bytes(3, 0);
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let err = cifar::read(&path, cifar::CIFAR10, None).unwrap_err().to_string();
    assert!(err.contains("data_batch_1.bin") && err.contains("3073-byte records"), "{err}");
    let err = cifar::read(&path, cifar::CIFAR10, Some(10_000)).unwrap_err().to_string();
    assert!(err.contains("data_batch_1.bin") && err.contains("truncated"), "{err}");
}

#[test]
fn cifar_wrong_record_size_is_refused() {
    // A CIFAR-10 file read as CIFAR-100 has 3073-byte records, not 3074.
    let bytes = common::cifar10_bytes(7, 0);
    let err = cifar::parse(Path::new("train.bin"), &bytes, cifar::CIFAR100, None).unwrap_err().to_string();
    assert!(err.contains("train.bin") && err.contains("3074-byte records"), "{err}");
}

#[test]
fn cifar_labels_out_of_range_are_refused() {
    let mut bytes = common::cifar10_bytes(3, 0);
    bytes[3073] = 10;
    let err = cifar::parse(Path::new("test_batch.bin"), &bytes, cifar::CIFAR10, None).unwrap_err().to_string();
    assert!(err.contains("test_batch.bin") && err.contains("label 10 of record 1") && err.contains("0 to 9"), "{err}");
    let mut bytes = common::cifar100_bytes(2, 0);
    bytes[0] = 20; // coarse labels are 0-19
    let err = cifar::parse(Path::new("train.bin"), &bytes, cifar::CIFAR100, None).unwrap_err().to_string();
    assert!(err.contains("label 20 of record 0") && err.contains("0 to 19"), "{err}");
}

#[test]
fn cifar100_uses_the_fine_label() {
    let bytes = common::cifar100_bytes(150, 0);
    let set = cifar::parse(Path::new("train.bin"), &bytes, cifar::CIFAR100, None).unwrap();
    assert_eq!(set.labels[99], 99);
    assert_eq!(set.labels[120], 20);
}

#[test]
fn official_record_counts_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    common::write_cifar10(dir.path(), 4, 4);
    let err = data::load(Dataset::Cifar10, dir.path(), LoadOptions::default()).unwrap_err().to_string();
    assert!(err.contains("data_batch_1.bin") && err.contains("truncated"), "{err}");
    let folder = dir.path().join("mnist");
    common::write_idx_dataset(&folder, 12, 5);
    let err = data::load(Dataset::Mnist, dir.path(), LoadOptions::default()).unwrap_err().to_string();
    assert!(err.contains("train-images-idx3-ubyte.gz") && err.contains("12 records, expected 60000"), "{err}");
}

#[test]
fn idx_split_is_padded_to_32() {
    let dir = tempfile::tempdir().unwrap();
    common::write_idx_dataset(&dir.path().join("mnist"), 12, 5);
    let splits = data::load(Dataset::Mnist, dir.path(), loose()).unwrap();
    assert_eq!((splits.train.len(), splits.test.len(), splits.train.channels), (12, 5, 1));
    let (images, _) = common::idx_images(12, 1);
    let img = splits.train.image(0);
    assert_eq!(img.len(), 1024);
    assert_eq!(img[0], 0, "padding is zero");
    assert_eq!(img[2 * 32 + 2], images[0], "the 28x28 image starts at (2, 2)");
    assert_eq!(img[29 * 32 + 29], images[27 * 28 + 27]);
}

fn idx_pair(n: usize) -> (Vec<u8>, Vec<u8>) {
    let (images, labels) = common::idx_images(n, 3);
    idx::encode(&images, &labels)
}

#[test]
fn idx_bad_magic_truncation_and_count_mismatch_are_named() {
    let (img, lab) = idx_pair(4);
    let (ip, lp) = (Path::new("train-images-idx3-ubyte.gz"), Path::new("train-labels-idx1-ubyte.gz"));
    // A labels file passed as images: magic 2049.
    let (_, long_labels) = idx_pair(20);
    let err = idx::parse_split(ip, &long_labels, lp, &lab, None).unwrap_err().to_string();
    assert!(err.contains("train-images") && err.contains("magic number 2049, expected 2051"), "{err}");
    let err = idx::parse_split(ip, &img[..img.len() - 1], lp, &lab, None).unwrap_err().to_string();
    assert!(err.contains("train-images") && err.contains("truncated"), "{err}");
    let err = idx::parse_split(ip, &img, lp, &lab[..lab.len() - 2], None).unwrap_err().to_string();
    assert!(err.contains("train-labels") && err.contains("truncated"), "{err}");
    let err = idx::parse_split(ip, &img[..5], lp, &lab, None).unwrap_err().to_string();
    assert!(err.contains("truncated: 5 bytes"), "{err}");
    let (_, lab3) = idx_pair(3);
    let err = idx::parse_split(ip, &img, lp, &lab3, None).unwrap_err().to_string();
    assert!(err.contains("holds 4 images but") && err.contains("holds 3 labels"), "{err}");
}

#[test]
fn idx_label_range_and_image_size_are_checked() {
    let (img, mut lab) = idx_pair(4);
    lab[8 + 2] = 10;
    let err = idx::parse_split(Path::new("i"), &img, Path::new("t10k-labels"), &lab, None).unwrap_err().to_string();
    assert!(err.contains("t10k-labels") && err.contains("label 10 of record 2"), "{err}");
    let (mut img, lab) = idx_pair(4);
    img[11] = 27; // rows = 27
    let err = idx::parse_split(Path::new("imgs"), &img, Path::new("l"), &lab, None).unwrap_err().to_string();
    assert!(err.contains("imgs") && err.contains("27x28"), "{err}");
}

#[test]
fn corrupt_gzip_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("fashion-mnist");
    common::write_idx_dataset(&folder, 4, 4);
    let path = folder.join("t10k-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = data::load_from(Dataset::FashionMnist, &folder, loose()).unwrap_err().to_string();
    assert!(err.contains("t10k-images-idx3-ubyte.gz") && err.contains("gzip"), "{err}");
}

#[test]
fn missing_dataset_says_how_to_fetch_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = data::load(Dataset::Cifar100, dir.path(), loose()).unwrap_err().to_string();
    assert!(err.contains("cifar-100-binary") && err.contains("widesweep data fetch cifar100"), "{err}");
}
