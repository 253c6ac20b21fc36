//! Winograd F(2x2, 3x3) for the 3x3 stride-1 convolutions that make up
//! almost all of a WRN's arithmetic (Lavin & Gray, "Fast Algorithms for
//! Convolutional Neural Networks", 2016).
//!
//! Each 2x2 block of outputs ("tile") is computed from the 4x4 block of
//! inputs under it: `Y = A^T [(G g G^T) . (B^T d B)] A`. After the input and
//! filter transforms, the 16 positions of the 4x4 block are 16 independent
//! matrix products `[tiles, c] x [c, c_out]`, with 16 multiplications per tile
//! and channel pair where direct convolution needs 36: 2.25x fewer FLOPs in
//! the GEMMs, which is where the time goes. The transforms only add and
//! subtract, so they cost memory bandwidth, not arithmetic, and they run on
//! whole rows of channels (channels-last), which vectorises.
//!
//! The input gradient of a stride-1 convolution is itself a stride-1
//! convolution of the output gradient (weights flipped in space, input and
//! output channels swapped, padding `2 - p`), so it uses the same routine.
//! The weight gradient is the adjoint of the forward transform: per
//! position, `dU = V^T x (A dY A^T)` summed over tiles, then
//! `dW = G^T dU G`, with the same 2.25x saving.
//!
//! F(2x2, 3x3) rather than F(4x4, 3x3): its transforms have entries 0, +-1
//! and 1/2 only, so f32 results stay within a few ulps of direct
//! convolution, which training accuracy needs; F(4x4) gains another 1.8x in
//! the GEMMs but loses about two decimal digits.

use rayon::prelude::*;

use super::conv::ConvGeometry;
use super::gemm::{View, matmul};
use super::{PerThread, Real, partitions, sum_in_order, vectorized};

/// Positions of the transformed 4x4 tile: one GEMM each.
const POSITIONS: usize = 16;

/// Tiles per GEMM: enough rows to amortise packing the transformed filters,
/// few enough that the transformed inputs of a group stay in L2/L3.
const TARGET_TILES: usize = 256;

/// Fewer channels than this go to im2col: the transforms' cost per tile is
/// linear in the channels and the GEMMs' saving quadratic, so thin layers
/// gain little. Not tuned finely: at 16 -> 64 channels Winograd is still
/// 1.3-1.5x faster (examples/conv_throughput.rs), and WRN-10-1 (16-64
/// channels) trains about as fast either way.
pub const MIN_CHANNELS: usize = 8;

/// `im2col` computes every convolution with im2col + GEMM (to compare
/// speed or numerics), `winograd` (the default) uses Winograd where it
/// applies; read once per process.
pub const DISABLE_VAR: &str = "WIDESWEEP_CPU_CONV";

/// Whether Winograd is on: unless [`DISABLE_VAR`] says `im2col`.
pub fn enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| match std::env::var(DISABLE_VAR) {
        Ok(v) if v == "im2col" => false,
        Ok(v) if v == "winograd" || v.is_empty() => true,
        Ok(v) => {
            tracing::warn!("{DISABLE_VAR}={v:?} is not a convolution algorithm (winograd or im2col); using winograd");
            true
        }
        Err(_) => true,
    })
}

/// Whether a convolution is computed with Winograd: 3x3, stride 1, at most
/// 2 padding (so that its input gradient is a convolution with padding >= 0),
/// enough channels on both sides, and not turned off by [`DISABLE_VAR`].
pub fn applies(g: &ConvGeometry) -> bool {
    if !enabled() {
        return false;
    }
    g.kernel == 3 && g.stride == 1 && g.padding <= 2 && g.in_channels >= MIN_CHANNELS && g.out_channels >= MIN_CHANNELS
}

/// Elements per transformed tile in the `[tiles][16][c]` buffers: 16 rows
/// of channels plus a skew, so that the GEMMs, which read one position of
/// every tile, do not step by a power of two (channel counts usually are
/// one) and thrash a few cache sets.
fn tile_stride(channels: usize) -> usize {
    POSITIONS * channels + 16
}

/// Tiles along each axis of one image: `ceil(out / 2)`.
fn tiles(g: &ConvGeometry) -> (usize, usize) {
    (g.out_h().div_ceil(2), g.out_w().div_ceil(2))
}

/// `w [c_out, c, 3, 3]` -> `U [16][c][c_out]`, the filters in the
/// transformed domain (`G g G^T`), laid out as the right-hand side of each
/// position's GEMM. With `flip`, the filters of the input gradient: each
/// kernel turned by 180 degrees and `U [16][c_out][c]`.
fn transform_filters<T: Real>(w: &[T], c_out: usize, c: usize, flip: bool) -> Vec<T> {
    let half = T::from_f64(0.5);
    // G applied to three values: the rows (or columns) of G g.
    let g3 = |a: T, b: T, d: T| [a, (a + b + d) * half, (a - b + d) * half, d];
    let mut u = vec![T::zero(); POSITIONS * c * c_out];
    for (pair, kernel) in w.chunks_exact(9).enumerate() {
        let (co, ci) = (pair / c, pair % c);
        let mut k = [T::zero(); 9];
        k.copy_from_slice(kernel);
        if flip {
            k.reverse();
        }
        // G g: 4 rows of 3, by columns of g.
        let columns = [g3(k[0], k[3], k[6]), g3(k[1], k[4], k[7]), g3(k[2], k[5], k[8])];
        for i in 0..4 {
            let row = g3(columns[0][i], columns[1][i], columns[2][i]);
            for (j, value) in row.into_iter().enumerate() {
                let (rows, cols, r, s) = if flip { (c_out, c, co, ci) } else { (c, c_out, ci, co) };
                u[(i * 4 + j) * rows * cols + r * cols + s] = value;
            }
        }
    }
    u
}

/// `B^T` applied along one axis of four rows of channels, written to four
/// consecutive rows of `out`: `[a - c, b + c, c - b, b - d]`.
#[inline(always)]
fn input_transform_1d<T: Real>(a: &[T], b: &[T], c: &[T], d: &[T], out: &mut [T]) {
    let n = a.len();
    let (b, c, d) = (&b[..n], &c[..n], &d[..n]);
    let (o0, rest) = out.split_at_mut(n);
    let (o1, rest) = rest.split_at_mut(n);
    let (o2, o3) = rest.split_at_mut(n);
    let o3 = &mut o3[..n];
    for i in 0..n {
        let (a, b, c, d) = (a[i], b[i], c[i], d[i]);
        o0[i] = a - c;
        o1[i] = b + c;
        o2[i] = c - b;
        o3[i] = b - d;
    }
}

/// `A^T` applied along one axis of four rows of channels, written to two
/// consecutive rows of `out`: `[a + b + c, b - c - d]`.
#[inline(always)]
fn output_transform_1d<T: Real>(a: &[T], b: &[T], c: &[T], d: &[T], out: &mut [T]) {
    let n = a.len();
    let (b, c, d) = (&b[..n], &c[..n], &d[..n]);
    let (o0, o1) = out.split_at_mut(n);
    let o1 = &mut o1[..n];
    for i in 0..n {
        let (a, b, c, d) = (a[i], b[i], c[i], d[i]);
        o0[i] = a + b + c;
        o1[i] = b - c - d;
    }
}

/// `A` applied along one axis of two rows of channels, written to four
/// consecutive rows of `out`: `[p, p + q, p - q, -q]` (the adjoint of
/// [`output_transform_1d`]).
#[inline(always)]
fn output_gradient_transform_1d<T: Real>(p: &[T], q: &[T], out: &mut [T]) {
    let n = p.len();
    let q = &q[..n];
    let (o0, rest) = out.split_at_mut(n);
    let (o1, rest) = rest.split_at_mut(n);
    let (o2, o3) = rest.split_at_mut(n);
    let o3 = &mut o3[..n];
    for i in 0..n {
        let (p, q) = (p[i], q[i]);
        o0[i] = p;
        o1[i] = p + q;
        o2[i] = p - q;
        o3[i] = T::zero() - q;
    }
}

/// Per-thread buffers, reused across the groups a thread processes.
struct Scratch<T> {
    /// Transformed inputs `[tiles][16][c]`.
    v: Vec<T>,
    /// GEMM results `[16][tiles][c_out]` (forward), or transformed output
    /// gradients `[tiles][16][c_out]` (weight gradient).
    m: Vec<T>,
    /// One tile half way through a transform.
    tile: Vec<T>,
    zeros: Vec<T>,
}

impl<T> Default for Scratch<T> {
    fn default() -> Self {
        Self { v: Vec::new(), m: Vec::new(), tile: Vec::new(), zeros: Vec::new() }
    }
}

vectorized! {
    /// `B^T d B` for every tile of the images in `x`, into `s.v`.
    fn transform_inputs<T: Real>(g: &ConvGeometry, x: &[T], s: &mut Scratch<T>) {
        let c = g.in_channels;
        let (th, tw) = tiles(g);
        let images = x.len() / (g.height * g.width * c);
        s.v.resize(images * th * tw * tile_stride(c), T::zero());
        s.tile.resize(POSITIONS * c, T::zero());
        s.zeros.resize(c, T::zero());
        let (tile, zeros) = (&mut s.tile[..], &s.zeros[..]);
        let mut v_tiles = s.v.chunks_exact_mut(tile_stride(c));
        for image in x.chunks_exact(g.height * g.width * c) {
            let pixel = |y: isize, x: isize| -> &[T] {
                if y < 0 || x < 0 || y >= g.height as isize || x >= g.width as isize {
                    zeros
                } else {
                    &image[(y as usize * g.width + x as usize) * c..][..c]
                }
            };
            for ty in 0..th {
                for tx in 0..tw {
                    let y0 = (2 * ty) as isize - g.padding as isize;
                    let x0 = (2 * tx) as isize - g.padding as isize;
                    let d: [&[T]; 16] = std::array::from_fn(|i| pixel(y0 + (i / 4) as isize, x0 + (i % 4) as isize));
                    // tile[s][r] = (B^T d)[r][s]: B^T down each column s.
                    for (col, out) in tile.chunks_exact_mut(4 * c).enumerate() {
                        input_transform_1d(d[col], d[4 + col], d[8 + col], d[12 + col], out);
                    }
                    // v[r][s] = (B^T d B)[r][s]: B^T along each row r.
                    let v = v_tiles.next().expect("one transformed tile per tile");
                    let t = &*tile;
                    for (row, out) in v[..POSITIONS * c].chunks_exact_mut(4 * c).enumerate() {
                        let at = |col: usize| &t[(col * 4 + row) * c..][..c];
                        input_transform_1d(at(0), at(1), at(2), at(3), out);
                    }
                }
            }
        }
    }
}

vectorized! {
    /// `A^T m A` for every tile, written (or added, with `accumulate`) to the
    /// output pixels of the images in `y`; tiles hanging over the edge of an
    /// odd-sized output drop their extra row or column.
    fn transform_outputs<T: Real>(g: &ConvGeometry, y: &mut [T], accumulate: bool, s: &mut Scratch<T>) {
        let c_out = g.out_channels;
        let (th, tw) = tiles(g);
        let (oh, ow) = (g.out_h(), g.out_w());
        let tiles_total = y.len() / (oh * ow * c_out) * th * tw;
        s.tile.resize(POSITIONS * c_out, T::zero());
        let (half, quad) = s.tile.split_at_mut(8 * c_out);
        let plane = tiles_total * c_out;
        let m = &s.m[..POSITIONS * plane];
        let mut t = 0;
        for image in y.chunks_exact_mut(oh * ow * c_out) {
            for ty in 0..th {
                for tx in 0..tw {
                    let at = |p: usize| &m[p * plane + t * c_out..][..c_out];
                    // half[s][r] = (A^T m)[r][s]: A^T down each column s.
                    for (col, out) in half.chunks_exact_mut(2 * c_out).enumerate() {
                        output_transform_1d(at(col), at(4 + col), at(8 + col), at(12 + col), out);
                    }
                    // quad[r][q] = (A^T m A)[r][q]: A^T along each row r.
                    for (row, out) in quad[..4 * c_out].chunks_exact_mut(2 * c_out).enumerate() {
                        let h = |col: usize| &half[(col * 2 + row) * c_out..][..c_out];
                        output_transform_1d(h(0), h(1), h(2), h(3), out);
                    }
                    for (row, values) in quad[..4 * c_out].chunks_exact(2 * c_out).enumerate() {
                        let oy = 2 * ty + row;
                        if oy >= oh {
                            break;
                        }
                        let width = (ow - 2 * tx).min(2) * c_out;
                        let dst = &mut image[(oy * ow + 2 * tx) * c_out..][..width];
                        if accumulate {
                            dst.iter_mut().zip(&values[..width]).for_each(|(d, v)| *d += *v);
                        } else {
                            dst.copy_from_slice(&values[..width]);
                        }
                    }
                    t += 1;
                }
            }
        }
    }
}

vectorized! {
    /// `A dY A^T` for every tile of the output gradients in `dy`, into `s.m`
    /// as `[tiles][16][c_out]`; pixels past an odd-sized edge count as zero.
    fn transform_output_gradients<T: Real>(g: &ConvGeometry, dy: &[T], s: &mut Scratch<T>) {
        let c_out = g.out_channels;
        let (th, tw) = tiles(g);
        let (oh, ow) = (g.out_h(), g.out_w());
        let images = dy.len() / (oh * ow * c_out);
        s.m.resize(images * th * tw * tile_stride(c_out), T::zero());
        s.tile.resize(8 * c_out, T::zero());
        s.zeros.resize(c_out, T::zero());
        let (tile, zeros) = (&mut s.tile[..], &s.zeros[..]);
        let mut m_tiles = s.m.chunks_exact_mut(tile_stride(c_out));
        for image in dy.chunks_exact(oh * ow * c_out) {
            let pixel = |y: usize, x: usize| -> &[T] {
                if y >= oh || x >= ow { zeros } else { &image[(y * ow + x) * c_out..][..c_out] }
            };
            for ty in 0..th {
                for tx in 0..tw {
                    // tile[q][r] = (A dY)[r][q]: A down each column q.
                    for (col, out) in tile.chunks_exact_mut(4 * c_out).enumerate() {
                        output_gradient_transform_1d(pixel(2 * ty, 2 * tx + col), pixel(2 * ty + 1, 2 * tx + col), out);
                    }
                    // m[r][s] = (A dY A^T)[r][s]: A along each row r.
                    let m = m_tiles.next().expect("one transformed tile per tile");
                    let t = &*tile;
                    for (row, out) in m[..POSITIONS * c_out].chunks_exact_mut(4 * c_out).enumerate() {
                        output_gradient_transform_1d(&t[row * c_out..][..c_out], &t[(4 + row) * c_out..][..c_out], out);
                    }
                }
            }
        }
    }
}

/// `dU [16][c][c_out]` -> `dW [c_out, c, 3, 3]`: `G^T dU G` per channel pair.
fn filter_gradients<T: Real>(du: &[T], c_out: usize, c: usize) -> Vec<T> {
    let half = T::from_f64(0.5);
    // G^T applied to four values.
    let h3 = |a: T, b: T, d: T, e: T| [a + (b + d) * half, (b - d) * half, (b + d) * half + e];
    let mut dw = vec![T::zero(); c_out * c * 9];
    for (pair, out) in dw.chunks_exact_mut(9).enumerate() {
        let (co, ci) = (pair / c, pair % c);
        let at = |i: usize, j: usize| du[(i * 4 + j) * c * c_out + ci * c_out + co];
        // G^T dU: 3 rows of 4, by columns of dU.
        let columns: [[T; 3]; 4] = std::array::from_fn(|j| h3(at(0, j), at(1, j), at(2, j), at(3, j)));
        for i in 0..3 {
            let row = h3(columns[0][i], columns[1][i], columns[2][i], columns[3][i]);
            out[i * 3..i * 3 + 3].copy_from_slice(&row);
        }
    }
    dw
}

/// Images per group for a geometry: whole images, about [`TARGET_TILES`].
fn images_per_group(g: &ConvGeometry) -> usize {
    let (th, tw) = tiles(g);
    TARGET_TILES.div_ceil(th * tw).clamp(1, g.batch.max(1))
}

/// `y = conv(x, w)`, or `y += conv(x, w)` with `accumulate`, over the whole
/// batch; `u` from [`transform_filters`] for this geometry.
fn convolve<T: Real>(g: &ConvGeometry, x: &[T], u: &[T], y: &mut [T], accumulate: bool) {
    let (c, c_out) = (g.in_channels, g.out_channels);
    let (th, tw) = tiles(g);
    let per = images_per_group(g);
    let (in_image, out_image) = (g.height * g.width * c, g.out_h() * g.out_w() * c_out);
    let scratch = PerThread::<Scratch<T>>::new();
    y.par_chunks_mut(per * out_image).zip(x.par_chunks(per * in_image)).for_each(|(y, x)| {
        scratch.with(|s| {
            transform_inputs(g, x, s);
            let rows = x.len() / in_image * th * tw;
            s.m.resize(POSITIONS * rows * c_out, T::zero());
            for (p, m) in s.m[..POSITIONS * rows * c_out].chunks_exact_mut(rows * c_out).enumerate() {
                let v = View { data: &s.v[p * c..], rows, cols: c, row_stride: tile_stride(c), col_stride: 1 };
                let u = View::row_major(&u[p * c * c_out..][..c * c_out], c, c_out);
                matmul(m, v, u, false);
            }
            transform_outputs(g, y, accumulate, s);
        })
    });
}

/// `y = conv(x, w)` (`y += conv(x, w)` with `accumulate`) for a geometry
/// that [`applies`]; `w` in PyTorch's layout.
pub fn forward<T: Real>(g: &ConvGeometry, x: &[T], w: &[T], y: &mut [T], accumulate: bool) {
    debug_assert!(applies(g));
    let u = transform_filters(w, g.out_channels, g.in_channels, false);
    convolve(g, x, &u, y, accumulate);
}

/// The input gradient `dx` of `y = conv(x, w)` from the output gradient
/// `dy`: a convolution of `dy` with the flipped, transposed filters.
pub fn input_gradient<T: Real>(g: &ConvGeometry, w: &[T], dy: &[T], dx: &mut [T]) {
    debug_assert!(applies(g));
    let transposed = ConvGeometry {
        height: g.out_h(),
        width: g.out_w(),
        in_channels: g.out_channels,
        out_channels: g.in_channels,
        padding: 2 - g.padding,
        ..*g
    };
    let u = transform_filters(w, g.out_channels, g.in_channels, true);
    convolve(&transposed, dy, &u, dx, false);
}

/// The weight gradient of `y = conv(x, w)`, `[c_out, c, 3, 3]`. Groups of
/// images fall into fixed partitions whose partial sums are added in order,
/// so the bits do not depend on the thread count.
pub fn weight_gradient<T: Real>(g: &ConvGeometry, x: &[T], dy: &[T]) -> Vec<T> {
    debug_assert!(applies(g));
    let (c, c_out) = (g.in_channels, g.out_channels);
    let (th, tw) = tiles(g);
    let per = images_per_group(g);
    let (in_image, out_image) = (g.height * g.width * c, g.out_h() * g.out_w() * c_out);
    let groups = g.batch.div_ceil(per);
    let scratch = PerThread::<Scratch<T>>::new();
    let partials: Vec<Vec<T>> = partitions(groups)
        .into_par_iter()
        .map(|part| {
            scratch.with(|s| {
                let mut du = vec![T::zero(); POSITIONS * c * c_out];
                for (i, group) in part.enumerate() {
                    let images = group * per..((group + 1) * per).min(g.batch);
                    transform_inputs(g, &x[images.start * in_image..images.end * in_image], s);
                    transform_output_gradients(g, &dy[images.start * out_image..images.end * out_image], s);
                    let rows = images.len() * th * tw;
                    for (p, du) in du.chunks_exact_mut(c * c_out).enumerate() {
                        // dU[p] [c, c_out] += V[p]^T [c, tiles] x (A dY A^T)[p] [tiles, c_out]
                        let v = View {
                            data: &s.v[p * c..],
                            rows: c,
                            cols: rows,
                            row_stride: 1,
                            col_stride: tile_stride(c),
                        };
                        let dm = View {
                            data: &s.m[p * c_out..],
                            rows,
                            cols: c_out,
                            row_stride: tile_stride(c_out),
                            col_stride: 1,
                        };
                        matmul(du, v, dm, i > 0);
                    }
                }
                filter_gradients(&du, c_out, c)
            })
        })
        .collect();
    sum_in_order(partials).unwrap_or_else(|| vec![T::zero(); c_out * c * 9])
}
