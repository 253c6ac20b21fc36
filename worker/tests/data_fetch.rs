//! `data fetch --from`: importing archives and folders, with checksum and
//! structural verification. (Downloads need the network and are not tested.)

mod common;

use std::path::{Path, PathBuf};

use widesweep_arch::Dataset;
use widesweep_worker::data::fetch::{FetchOptions, fetch};
use widesweep_worker::data::{self, DEBIAN_FASHION_MNIST, LoadOptions};

/// A cifar-10-binary.tar.gz laid out like the official one, minus `skip`.
fn cifar10_archive(dir: &Path, skip: Option<&str>) -> PathBuf {
    let src = dir.join("src");
    common::write_cifar10(&src, 10, 10);
    let path = dir.join("cifar-10-binary.tar.gz");
    let gz = flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for entry in std::fs::read_dir(src.join("cifar-10-batches-bin")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if Some(name.as_str()) != skip {
            tar.append_path_with_name(entry.path(), format!("cifar-10-batches-bin/{name}")).unwrap();
        }
    }
    tar.into_inner().unwrap().finish().unwrap();
    path
}

fn unofficial(from: &Path) -> FetchOptions {
    FetchOptions { from: Some(from.into()), allow_unofficial: true, progress: false }
}

#[test]
fn cifar_archive_import_extracts_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let archive = cifar10_archive(dir.path(), None);
    let data_dir = dir.path().join("data");
    let report = fetch(Dataset::Cifar10, &data_dir, &unofficial(&archive)).unwrap();
    assert_eq!((report.train_images, report.test_images), (50, 10));
    let splits = data::load(Dataset::Cifar10, &data_dir, LoadOptions { official_sizes: false }).unwrap();
    assert_eq!(splits.train.len(), 50);
}

#[test]
fn archive_with_an_unofficial_checksum_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let archive = cifar10_archive(dir.path(), None);
    let options = FetchOptions { from: Some(archive.clone()), ..FetchOptions::default() };
    let err = fetch(Dataset::Cifar10, &dir.path().join("data"), &options).unwrap_err().to_string();
    assert!(
        err.contains("cifar-10-binary.tar.gz") && err.contains("expected c32a1d4ab5d03f1284b67883e8d87530"),
        "{err}"
    );
}

#[test]
fn archive_missing_a_member_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let archive = cifar10_archive(dir.path(), Some("data_batch_3.bin"));
    let err = fetch(Dataset::Cifar10, &dir.path().join("data"), &unofficial(&archive)).unwrap_err().to_string();
    assert!(err.contains("no member data_batch_3.bin"), "{err}");
}

#[test]
fn imported_files_are_verified_by_the_readers() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("mnist-src");
    common::write_idx_dataset(&src, 8, 4);
    // Corrupt one label: the import must fail naming the file.
    let labels = src.join("t10k-labels-idx1-ubyte.gz");
    let (_, mut lab) = widesweep_worker::data::idx::encode(&[0; 784 * 4], &[1, 2, 3, 4]);
    lab[9] = 42;
    std::fs::write(&labels, common::gzip(&lab)).unwrap();
    let err = fetch(Dataset::Mnist, &dir.path().join("data"), &unofficial(&src)).unwrap_err().to_string();
    assert!(err.contains("t10k-labels-idx1-ubyte.gz") && err.contains("label 42"), "{err}");
}

#[test]
fn idx_folder_import_copies_the_four_files() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    common::write_idx_dataset(&src, 8, 4);
    let data_dir = dir.path().join("data");
    // Pointing at one of the files imports its folder.
    let report = fetch(Dataset::Mnist, &data_dir, &unofficial(&src.join("train-images-idx3-ubyte.gz"))).unwrap();
    assert_eq!((report.train_images, report.test_images), (8, 4));
    assert!(data_dir.join("mnist/t10k-labels-idx1-ubyte.gz").exists());
}

/// Real data: Debian's recompressed Fashion-MNIST passes the official
/// checks (content checksum and record counts).
#[test]
fn debian_fashion_mnist_is_found_and_verified() {
    if !Path::new(DEBIAN_FASHION_MNIST).join("train-images-idx3-ubyte.gz").exists() {
        panic!("install the real data first: apt-get install dataset-fashion-mnist");
    }
    let dir = tempfile::tempdir().unwrap();
    let report = fetch(Dataset::FashionMnist, dir.path(), &FetchOptions::default()).unwrap();
    assert_eq!((report.train_images, report.test_images), (60_000, 10_000));
    assert!(report.source.contains("Debian"), "{}", report.source);
}
