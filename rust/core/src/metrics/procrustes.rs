//! Optimal rotation between two centred point sets, for PA-MPJPE.
//!
//! For centred ground truth x_i and prediction y_i we need the proper
//! rotation Q maximising sum_i x_i . (Q y_i), and that maximum. This equals
//! the SVD route of the reference (R = V U^T with the reflection fix, whose
//! trace sum is sigma_1 + sigma_2 +- sigma_3) but has no degenerate branches:
//! in 3-D it is Horn's quaternion method (the top eigenpair of a symmetric
//! 4 x 4 matrix, by Jacobi rotations); in 2-D it is a closed form.

/// Proper rotation (row-major, acting on column vectors) and the maximised
/// sum. `s[a][b] = sum_i y_i[a] * x_i[b]`.
pub(crate) fn best_rotation(s: &[[f64; 3]; 3], d: usize) -> ([[f64; 3]; 3], f64) {
    if d == 2 {
        rotation_2d(s)
    } else {
        rotation_3d(s)
    }
}

fn rotation_2d(s: &[[f64; 3]; 3]) -> ([[f64; 3]; 3], f64) {
    // x . Qy with Q = [[c, -s], [s, c]] is c * a + s * b.
    let a = s[0][0] + s[1][1];
    let b = s[0][1] - s[1][0];
    let lambda = a.hypot(b);
    let (c, sn) = if lambda > 0.0 {
        (a / lambda, b / lambda)
    } else {
        (1.0, 0.0)
    };
    ([[c, -sn, 0.0], [sn, c, 0.0], [0.0, 0.0, 1.0]], lambda)
}

fn rotation_3d(s: &[[f64; 3]; 3]) -> ([[f64; 3]; 3], f64) {
    let [[sxx, sxy, sxz], [syx, syy, syz], [szx, szy, szz]] = *s;
    let n = [
        [sxx + syy + szz, syz - szy, szx - sxz, sxy - syx],
        [syz - szy, sxx - syy - szz, sxy + syx, szx + sxz],
        [szx - sxz, sxy + syx, -sxx + syy - szz, syz + szy],
        [sxy - syx, szx + sxz, syz + szy, -sxx - syy + szz],
    ];
    let (values, vectors) = jacobi_eigen4(n);
    let top = (1..4).fold(0, |best, i| if values[i] > values[best] { i } else { best });
    let mut q = [
        vectors[0][top],
        vectors[1][top],
        vectors[2][top],
        vectors[3][top],
    ];
    let norm = q.iter().map(|x| x * x).sum::<f64>().sqrt();
    q.iter_mut().for_each(|x| *x /= norm);
    let [w, x, y, z] = q;
    let r = [
        [
            w * w + x * x - y * y - z * z,
            2.0 * (x * y - w * z),
            2.0 * (x * z + w * y),
        ],
        [
            2.0 * (y * x + w * z),
            w * w - x * x + y * y - z * z,
            2.0 * (y * z - w * x),
        ],
        [
            2.0 * (z * x - w * y),
            2.0 * (z * y + w * x),
            w * w - x * x - y * y + z * z,
        ],
    ];
    // The top eigenvalue is the maximised sum; recompute it from R for accuracy.
    let lambda = (0..3)
        .map(|a| (0..3).map(|b| r[a][b] * s[b][a]).sum::<f64>())
        .sum::<f64>();
    (r, lambda)
}

/// Eigenvalues and eigenvectors (columns) of a symmetric 4 x 4 matrix by cyclic Jacobi rotations.
fn jacobi_eigen4(mut a: [[f64; 4]; 4]) -> ([f64; 4], [[f64; 4]; 4]) {
    let mut v = [[0.0; 4]; 4];
    for (i, row) in v.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for _ in 0..64 {
        let off: f64 = (0..4)
            .flat_map(|p| (p + 1..4).map(move |q| (p, q)))
            .map(|(p, q)| a[p][q] * a[p][q])
            .sum();
        let diag: f64 = (0..4).map(|i| a[i][i] * a[i][i]).sum();
        if off <= f64::EPSILON * f64::EPSILON * diag * 1e-4 || off < f64::MIN_POSITIVE {
            break;
        }
        for p in 0..3 {
            for q in p + 1..4 {
                if a[p][q] == 0.0 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = if theta.is_infinite() {
                    0.0
                } else {
                    theta.signum() / (theta.abs() + theta.hypot(1.0))
                };
                let cs = 1.0 / t.hypot(1.0);
                let sn = t * cs;
                for row in &mut a {
                    let (x, y) = (row[p], row[q]);
                    row[p] = cs * x - sn * y;
                    row[q] = sn * x + cs * y;
                }
                let (row_p, row_q) = (a[p], a[q]);
                a[p] = std::array::from_fn(|i| cs * row_p[i] - sn * row_q[i]);
                a[q] = std::array::from_fn(|i| sn * row_p[i] + cs * row_q[i]);
                for row in &mut v {
                    let (x, y) = (row[p], row[q]);
                    row[p] = cs * x - sn * y;
                    row[q] = sn * x + cs * y;
                }
            }
        }
    }
    ([a[0][0], a[1][1], a[2][2], a[3][3]], v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rot_z(t: f64) -> [[f64; 3]; 3] {
        [
            [t.cos(), -t.sin(), 0.0],
            [t.sin(), t.cos(), 0.0],
            [0.0, 0.0, 1.0],
        ]
    }

    fn matmul(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
        let mut c = [[0.0; 3]; 3];
        for i in 0..3 {
            for j in 0..3 {
                c[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
            }
        }
        c
    }

    /// s for ground truth x_i = Q y_i.
    fn cross(ys: &[[f64; 3]], q: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
        let mut s = [[0.0; 3]; 3];
        for y in ys {
            let x: Vec<f64> = (0..3)
                .map(|r| (0..3).map(|c| q[r][c] * y[c]).sum())
                .collect();
            for a in 0..3 {
                for b in 0..3 {
                    s[a][b] += y[a] * x[b];
                }
            }
        }
        s
    }

    #[test]
    fn recovers_a_known_rotation() {
        let ys = [
            [1.0, 0.2, 0.3],
            [-0.4, 1.0, 0.1],
            [0.3, -0.2, 1.0],
            [-0.9, -1.0, -1.4],
        ];
        let rx = [
            [1.0, 0.0, 0.0],
            [0.0, 0.6f64.cos(), -0.6f64.sin()],
            [0.0, 0.6f64.sin(), 0.6f64.cos()],
        ];
        let q = matmul(&rot_z(1.1), &rx);
        let (r, lambda) = best_rotation(&cross(&ys, &q), 3);
        for i in 0..3 {
            for j in 0..3 {
                assert!((r[i][j] - q[i][j]).abs() < 1e-12, "{r:?} vs {q:?}");
            }
        }
        let total: f64 = ys.iter().flatten().map(|v| v * v).sum();
        assert!((lambda - total).abs() < 1e-12);
    }

    #[test]
    fn reflections_are_never_returned() {
        // Ground truth is the mirror image (z -> -z) of a non-planar prediction.
        let ys = [
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 1.0],
            [-1.0, -1.0, -1.0],
        ];
        let mirror = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]];
        let (r, _) = best_rotation(&cross(&ys, &mirror), 3);
        let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
            - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
            + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
        assert!((det - 1.0).abs() < 1e-12);
    }

    #[test]
    fn two_d_closed_form() {
        let ys = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [-1.0, -2.0, 0.0]];
        let q = rot_z(-2.5);
        let (r, lambda) = best_rotation(&cross(&ys, &q), 2);
        assert!((r[0][0] - q[0][0]).abs() < 1e-12 && (r[1][0] - q[1][0]).abs() < 1e-12);
        assert!((lambda - 10.0).abs() < 1e-12);
        assert_eq!(best_rotation(&[[0.0; 3]; 3], 2).1, 0.0);
    }
}
