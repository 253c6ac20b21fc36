//! Single-threaded matrix products through the `gemm` crate (the one candle
//! uses), on strided views: the kernels parallelise over groups of images
//! themselves, so each product runs on one core without synchronisation.

use super::Real;

/// A read-only matrix view: element (i, j) is `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
pub struct View<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a, T> View<'a, T> {
    /// A dense row-major `rows x cols` matrix.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// The transpose of a dense row-major `cols x rows` matrix.
    pub fn transposed(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self { data, rows, cols, row_stride: 1, col_stride: rows }
    }

    fn last_index(&self) -> usize {
        (self.rows.max(1) - 1) * self.row_stride + (self.cols.max(1) - 1) * self.col_stride
    }
}

/// `dst = lhs x rhs` (or `dst += lhs x rhs` when `accumulate`), with `dst`
/// dense row-major `lhs.rows x rhs.cols`.
pub fn matmul<T: Real>(dst: &mut [T], lhs: View<T>, rhs: View<T>, accumulate: bool) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(k, rhs.rows, "inner dimensions differ");
    assert!(dst.len() >= m * n, "destination too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(T::zero());
        }
        return;
    }
    // The bounds the raw pointers below rely on.
    assert!(lhs.last_index() < lhs.data.len(), "lhs view out of bounds");
    assert!(rhs.last_index() < rhs.data.len(), "rhs view out of bounds");
    // SAFETY: every index gemm reads or writes lies inside the slices (checked
    // above), `dst` is borrowed mutably and cannot alias the inputs, and T is
    // f32 or f64, which gemm supports.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}
