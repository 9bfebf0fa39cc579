"""Mean-squared displacement by FFT over all time origins.

For one particle with unwrapped positions ``r(k)``, ``k = 0..T-1``, the time-averaged
MSD at lag ``m`` is

    MSD(m) = 1/(T-m) * sum_{k=0}^{T-m-1} |r(k+m) - r(k)|^2
           = 1/(T-m) * [S1(m) - 2 S2(m)],

with ``S1`` from prefix sums of ``|r|^2`` and ``S2(m) = sum_k r(k).r(k+m)`` the
autocorrelation, computed by FFT (Wiener–Khinchin; Calandrini et al., *École
Thématique de la Société Française de la Neutronique* 12, 201 (2011); the same
``S1 - 2 S2`` decomposition as nMOLDYN, MDAnalysis and pymatgen-analysis-diffusion).
Cost O(N T log T); memory is the positions of the species plus one block of FFTs.

Besides the mean MSD at every lag, :func:`msd_fft` keeps, at ~``n_sample_lags``
log-spaced lags, what the diffusion estimator needs (see :mod:`.diffusion`):

* the per-particle time-averaged MSD ``m_i(t)``  (particle resampling of the error);
* the variance of squared displacements over *non-overlapping* time origins and the
  number of such independent samples ``N * floor((T-1)/m)`` (kinisi's covariance
  model, McCluskey et al., *J. Chem. Theory Comput.* 20, 1 (2024));
* the non-Gaussian parameter alpha_2(t) = 3<r^4>/(5<r^2>^2) - 1 (Rahman 1964).

The collective (charge) MSD ``|sum_i q_i Δr_i(t)|^2`` of the species, the quantity
whose slope gives the conductivity including ion–ion correlations, is computed by
the same FFT on the summed displacement.

Units: Å, fs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viglas.errors import AnalysisError

__all__ = ["MSDResult", "msd_fft", "msd_fft_per_particle", "pool_msd", "sample_lags",
           "msd_from_table"]


def sample_lags(n_frames: int, n_sample_lags: int = 160) -> np.ndarray:
    """Unique, roughly log-spaced lags ``1..n_frames-1`` (frames) used for fitting."""
    if n_frames < 2:
        return np.zeros(0, dtype=int)
    lags = np.unique(np.round(np.geomspace(1, n_frames - 1, n_sample_lags)).astype(int))
    return lags[(lags >= 1) & (lags <= n_frames - 1)]


def msd_fft_per_particle(x: np.ndarray, block: int = 4) -> np.ndarray:
    """Time-averaged MSD of every particle at every lag.

    Parameters
    ----------
    x : (T, N, d) unwrapped positions in Å.
    block : particles transformed at once (bounds transient memory).

    Returns
    -------
    (T, N) array: MSD of each particle at lags ``0..T-1`` (frames), Å².
    """
    t, n, _ = np.shape(x)
    return _msd_blocks(x, np.arange(t), block=block)[1].T


def _msd_blocks(x: np.ndarray, lags: np.ndarray, block: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Mean MSD over particles at every lag, and each particle's MSD at ``lags``.

    Streams over blocks of ``block`` particles: memory is one block of FFTs, never a
    (T, N) array. Returns ``(mean (T,), per_particle (N, len(lags)))`` in Å².
    The FFTs are scipy's; the O(N T) passes around them (transposing into the padded
    buffer, |F|^2 summed over axes, the prefix sums of |r|^2) are compiled loops when
    numba is available (same formulas, ~5x less time than the numpy expressions).
    The block size does not change a single bit (every row is transformed on its own
    and the sums run over the particles in order); 4 particles (12 rows) keep the
    transient arrays small enough to be reused from block to block instead of touching
    fresh memory pages (16 cost ~20 % more CPU at 10 000-100 000 frames here).
    """
    kern = _msd_kernels()
    if kern is None:  # pragma: no cover - numba is a dependency
        return _msd_blocks_numpy(x, lags, block)
    from scipy.fft import irfft, next_fast_len, rfft

    fill, power, s1_lags = kern
    t, n, dim = x.shape
    nfft = next_fast_len(2 * t, real=True)
    lags = np.ascontiguousarray(lags, dtype=np.int64)
    norm_all = (t - np.arange(t)).astype(float)
    pp = np.empty((n, len(lags)))
    s1_sum = np.zeros(t)
    p_sum = np.zeros(nfft // 2 + 1)
    bmax = min(block, n)
    buf = np.zeros((bmax * dim, nfft))  # zero tail [t:] is never written: reused
    r2 = np.empty((bmax, t))
    pre = np.empty(t + 1)
    for s in range(0, n, block):
        b = min(block, n - s)
        fill(x, s, b, buf, r2)
        f = rfft(buf[:b * dim], axis=1)
        pw = np.empty((b, f.shape[1]))
        power(f, dim, pw, p_sum)
        del f
        s2 = irfft(pw, n=nfft, axis=1)
        del pw
        s1_lags(r2[:b], s, s2, lags, norm_all, pre, s1_sum, pp)
        del s2
    s2_sum = irfft(p_sum, n=nfft)[:t]
    mean = (s1_sum - 2.0 * s2_sum) / norm_all / n
    mean[0] = 0.0
    pp[:, lags == 0] = 0.0
    return np.maximum(mean, 0.0), pp


def _msd_blocks_numpy(x: np.ndarray, lags: np.ndarray, block: int = 16
                      ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_msd_blocks` in numpy only (no numba)."""
    from scipy.fft import irfft, next_fast_len, rfft

    t, n, dim = x.shape
    nfft = next_fast_len(2 * t, real=True)
    lags = np.asarray(lags, dtype=np.int64)
    norm_all = (t - np.arange(t)).astype(float)
    pp = np.empty((n, len(lags)))
    s1_sum = np.zeros(t)
    p_sum = None
    for s in range(0, n, block):
        xb = np.asarray(x[:, s:s + block, :], dtype=np.float64)
        b = xb.shape[1]
        # contiguous, zero-padded (b*dim, nfft) rows: FFTs along the fast axis are
        # several times faster than strided ones along axis 0
        buf = np.zeros((b * dim, nfft))
        buf[:, :t] = xb.reshape(t, b * dim).T
        f = rfft(buf, axis=1, overwrite_x=True)
        del buf
        # |F|^2 summed over dimensions in one pass: view complex as (re, im) float pairs
        fv = f.view(np.float64).reshape(b, dim, f.shape[1], 2)
        pw = np.einsum("bdkc,bdkc->bk", fv, fv)
        del f, fv
        p_sum = pw.sum(axis=0) if p_sum is None else p_sum + pw.sum(axis=0)
        s2 = irfft(pw, n=nfft, axis=1)[:, :t]
        del pw
        r2 = np.einsum("ijk,ijk->ij", xb, xb)
        pre = np.empty((t + 1, b))
        pre[0] = 0.0
        np.cumsum(r2, axis=0, out=pre[1:])
        # S1(m) = sum_{k<t-m} r2(k) + sum_{k>=m} r2(k) = pre[t-m] + pre[t] - pre[m]
        s1 = pre[t:0:-1] + (pre[t] - pre[:t])           # (t, b)
        s1_sum += s1.sum(axis=1)
        pp[s:s + b] = ((s1[lags].T - 2.0 * s2[:, lags]) / norm_all[lags]).clip(min=0.0)
        del s1, s2, pre, r2
    s2_sum = irfft(p_sum, n=nfft)[:t]
    mean = (s1_sum - 2.0 * s2_sum) / norm_all / n
    mean[0] = 0.0
    pp[:, lags == 0] = 0.0
    return np.maximum(mean, 0.0), pp


_KERNELS: list = []


def _msd_kernels():
    """``(fill, power, s1_lags)`` compiled with numba (cached on disk), or
    None without numba."""
    if not _KERNELS:
        try:
            import numba
        except ImportError:  # pragma: no cover
            _KERNELS.append(None)
        else:
            _KERNELS.append(_build_kernels(numba))
    return _KERNELS[0][:3] if _KERNELS[0] is not None else None


def _nonoverlap_kernel():
    _msd_kernels()
    return _KERNELS[0][3] if _KERNELS[0] is not None else None


def _charge_kernel():
    _msd_kernels()
    return _KERNELS[0][4] if _KERNELS[0] is not None else None


def _build_kernels(numba):
    @numba.njit(cache=True, nogil=True)
    def fill(x, s, b, buf, r2):
        """buf[j*dim + d, :t] = x[:, s + j, d] (the transposed block; tail untouched)
        and r2[j, k] = |x[k, s + j]|^2, in one cache-friendly pass over the block."""
        t = x.shape[0]
        dim = x.shape[2]
        tile = 256
        for k0 in range(0, t, tile):
            k1 = min(t, k0 + tile)
            for j in range(b):
                for k in range(k0, k1):
                    r2[j, k] = 0.0
                for d in range(dim):
                    row = j * dim + d
                    for k in range(k0, k1):
                        v = x[k, s + j, d]
                        buf[row, k] = v
                        r2[j, k] += v * v

    @numba.njit(cache=True, nogil=True)
    def charge_sum(x, q, tot):
        """tot[k, d] = sum_i q[i] x[k, i, d]; False if x holds a NaN or inf."""
        ok = True
        for k in range(x.shape[0]):
            for d in range(x.shape[2]):
                tot[k, d] = 0.0
            for i in range(x.shape[1]):
                for d in range(x.shape[2]):
                    v = x[k, i, d]
                    if not np.isfinite(v):
                        ok = False
                    tot[k, d] += q[i] * v
        return ok

    @numba.njit(cache=True, nogil=True)
    def power(f, dim, pw, p_sum):
        """pw[j, k] = sum_d |f[j*dim + d, k]|^2; p_sum += sum_j pw[j]."""
        b = pw.shape[0]
        nk = pw.shape[1]
        for j in range(b):
            for k in range(nk):
                acc = 0.0
                for d in range(dim):
                    z = f[j * dim + d, k]
                    acc += z.real * z.real + z.imag * z.imag
                pw[j, k] = acc
                p_sum[k] += acc

    @numba.njit(cache=True, nogil=True)
    def s1_lags(r2, s, s2, lags, norm_all, pre, s1_sum, pp):
        """Prefix sums of |r|^2 per particle: S1(m) = pre[t-m] + (pre[t] - pre[m]),
        summed over particles into ``s1_sum``; per-particle MSD at ``lags`` into
        ``pp[s + j]`` = max((S1 - 2 S2) / (t - m), 0)."""
        b = r2.shape[0]
        t = r2.shape[1]
        for j in range(b):
            pre[0] = 0.0
            acc = 0.0
            for k in range(t):
                acc += r2[j, k]
                pre[k + 1] = acc
            tot = pre[t]
            for m in range(t):
                s1_sum[m] += pre[t - m] + (tot - pre[m])
            for q in range(lags.shape[0]):
                m = lags[q]
                v = (pre[t - m] + (tot - pre[m]) - 2.0 * s2[j, m]) / norm_all[m]
                pp[s + j, q] = v if v > 0.0 else 0.0

    @numba.njit(cache=True, nogil=True)
    def nonoverlap(x, lags, max_samples, n, s2, s4):
        """Non-overlapping displacements per lag m: x[(q+1)m] - x[qm] for
        q < min(max_samples, (T-1)//m); count in the data ``n``, and ``n`` times the
        mean of |Δr|^2 and of |Δr|^4 over the sampled ones."""
        t = x.shape[0]
        npart = x.shape[1]
        dim = x.shape[2]
        for jl in range(lags.shape[0]):
            m = lags[jl]
            nq = (t - 1) // m
            if nq > max_samples:
                nq = max_samples
            a2 = 0.0
            a4 = 0.0
            for q in range(nq):
                k0 = q * m
                k1 = k0 + m
                for i in range(npart):
                    r2 = 0.0
                    for d in range(dim):
                        dd = x[k1, i, d] - x[k0, i, d]
                        r2 += dd * dd
                    a2 += r2
                    a4 += r2 * r2
            n[jl] = npart * ((t - 1) // m)
            cnt = nq * npart
            s2[jl] = a2 / cnt * n[jl]
            s4[jl] = a4 / cnt * n[jl]

    return fill, power, s1_lags, nonoverlap, charge_sum


@dataclass
class MSDResult:
    """MSD of one species (possibly pooled over replicas).

    Attributes (Å, fs):
        species: element symbol.
        dt_fs: time between frames.
        lag_time_fs: (L,) lag times ``0, dt, 2dt, ...``.
        msd_A2: (L,) MSD averaged over particles and all time origins.
        counts: (L,) number of (particle, origin) pairs behind each MSD value.
        sample_lag: (K,) lags (frames) at which the per-particle data below are kept.
        per_particle_A2: (N, K) time-averaged MSD of every particle at ``sample_lag``.
        var_sq_A4: (K,) variance of |Δr|^2 over non-overlapping origins and particles.
        n_independent: (K,) number of non-overlapping samples ``sum N*floor((T-1)/m)``.
        mean_sq_A2: (K,) mean of |Δr|^2 over those non-overlapping samples.
        ngp: (K,) non-Gaussian parameter alpha_2 at ``sample_lag``.
        charge_msd_A2: (L,) collective MSD |sum_i q_i Δr_i|^2 / N of the species (q=1),
            pooled over replicas, or None.
        charge_counts: (L,) number of origins behind each collective MSD value.
        n_particles: particles over all replicas; n_frames: frames per replica;
        replica_particles: particles per replica.
        dimension: spatial dimensions (3).
        point_err_A2: (K,) one-sigma errors of the mean MSD at ``sample_lag`` given with
            an MSD table (:func:`msd_from_table`), else None.
        source: ``"trajectory"`` or ``"msd-table"`` (no per-particle data).
        n_particles_known: False for a table without ``n_ions`` (no effective jump count).
    """

    species: str
    dt_fs: float
    lag_time_fs: np.ndarray
    msd_A2: np.ndarray
    counts: np.ndarray
    sample_lag: np.ndarray
    per_particle_A2: np.ndarray
    var_sq_A4: np.ndarray
    n_independent: np.ndarray
    mean_sq_A2: np.ndarray
    ngp: np.ndarray
    charge_msd_A2: np.ndarray | None
    charge_counts: np.ndarray | None
    n_particles: int
    n_frames: list[int] = field(default_factory=list)
    dimension: int = 3
    replica_particles: list[int] = field(default_factory=list)
    point_err_A2: np.ndarray | None = None
    source: str = "trajectory"
    n_particles_known: bool = True

    @property
    def sample_time_fs(self) -> np.ndarray:
        """Lag times (fs) of the per-particle samples."""
        return self.sample_lag * self.dt_fs

    @property
    def total_time_fs(self) -> float:
        """Longest replica duration (fs)."""
        return (max(self.n_frames) - 1) * self.dt_fs

    def to_dict(self, max_points: int = 400) -> dict[str, Any]:
        """JSON-ready summary: the MSD curve on at most ``max_points`` log-spaced lags."""
        idx = np.unique(np.concatenate([[0], sample_lags(len(self.msd_A2), max_points)]))
        d = {"species": self.species, "dt_fs": self.dt_fs, "n_particles": self.n_particles,
             "n_frames": list(self.n_frames), "dimension": self.dimension,
             "lag_time_fs": self.lag_time_fs[idx].tolist(), "msd_A2": self.msd_A2[idx].tolist()}
        if self.charge_msd_A2 is not None:
            d["charge_msd_A2"] = self.charge_msd_A2[idx].tolist()
        return d


def _nonoverlap_stats(x: np.ndarray, lags: np.ndarray,
                     max_samples: int = 4096) -> tuple[np.ndarray, ...]:
    """Non-overlapping displacements per lag: number available in the data, and the
    mean and fourth moment of |Δr|^2 estimated from at most ``max_samples`` of them
    per particle (plenty for a variance; keeps the cost ~ 2-3 passes over x)."""
    n = np.zeros(len(lags))
    s2 = np.zeros(len(lags))
    s4 = np.zeros(len(lags))
    t, npart = x.shape[0], x.shape[1]
    kern = _nonoverlap_kernel()
    if kern is not None and len(lags) and np.all(np.asarray(lags) >= 1):
        kern(x, np.ascontiguousarray(lags, dtype=np.int64), int(max_samples), n, s2, s4)
        return n, s2, s4
    for j, m in enumerate(lags):
        sub = x[:max_samples * m + 1:m]
        d = sub[1:] - sub[:-1]
        r2 = np.einsum("ijk,ijk->ij", d, d)
        n[j] = npart * ((t - 1) // m)
        s2[j] = r2.mean() * n[j]
        s4[j] = np.einsum("ij,ij->", r2, r2) / r2.size * n[j]
    return n, s2, s4


def msd_fft(positions: np.ndarray, dt_fs: float, *, species: str = "X",
            charges: float | np.ndarray = 1.0, n_sample_lags: int = 160,
            block: int = 4, charge_msd: bool = True) -> MSDResult:
    """MSD of one species from unwrapped positions, all time origins, by FFT.

    Parameters
    ----------
    positions : (T, N, 3) unwrapped Cartesian positions in Å (drift already removed,
        see :func:`viglas.analysis.io.read_trajectory`).
    dt_fs : time between frames in fs.
    species : label stored in the result.
    charges : charge (e) of each particle for the collective MSD (scalar or (N,)).
    n_sample_lags : number of log-spaced lags at which per-particle data are kept.
    block : particles per FFT block (memory ~ block * 2T * 3 complex numbers).
    charge_msd : also compute the collective (charge) MSD.

    Raises
    ------
    AnalysisError : fewer than 4 frames, no particles, non-finite positions.
    """
    x = np.asarray(positions, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] not in (1, 2, 3):
        raise AnalysisError("positions must have shape (frames, particles, 3)",
                            field="positions", value=getattr(x, "shape", None))
    t, n, dim = x.shape
    if t < 4:
        raise AnalysisError("too few frames for an MSD", field="n_frames", value=t,
                            allowed=">= 4 (and many more for a diffusion coefficient)")
    if n < 1:
        raise AnalysisError("no particles of this species", field="species", value=species)
    ckern = _charge_kernel()
    q = np.ascontiguousarray(np.broadcast_to(np.asarray(charges, dtype=float), (n,)))
    tot = None
    if ckern is not None:  # one pass: the charge-weighted sum and the finiteness check
        x = np.ascontiguousarray(x)
        tot = np.empty((t, dim))
        finite = ckern(x, q, tot)
    else:  # pragma: no cover
        finite = bool(np.all(np.isfinite(x)))
    if not finite:
        raise AnalysisError("positions contain NaN or inf", field="positions", value="non-finite")
    if not (dt_fs > 0):
        raise AnalysisError("time between frames must be positive", field="dt_fs", value=dt_fs)
    lags = sample_lags(t, n_sample_lags)
    msd, pp = _msd_blocks(x, lags, block=block)
    counts = (t - np.arange(t)) * n
    nn, s2, s4 = _nonoverlap_stats(x, lags)
    mean2 = s2 / nn
    var = np.where(nn > 1, (s4 - nn * mean2**2) / np.maximum(nn - 1, 1), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        ngp = dim * (s4 / nn) / ((dim + 2) * mean2**2) - 1.0
    cmsd = ccounts = None
    if charge_msd:
        if tot is None:  # pragma: no cover
            tot = np.einsum("tnd,n->td", x, q)      # no (T, N, 3) temporary
        tot -= tot[0]
        cmsd = _msd_blocks(tot[:, None, :], np.zeros(0, dtype=np.int64))[0] / n
        ccounts = t - np.arange(t)
    return MSDResult(species=species, dt_fs=float(dt_fs), lag_time_fs=np.arange(t) * dt_fs,
                     msd_A2=msd, counts=counts, sample_lag=lags, per_particle_A2=pp,
                     var_sq_A4=var, n_independent=nn, mean_sq_A2=mean2, ngp=ngp,
                     charge_msd_A2=cmsd, charge_counts=ccounts, n_particles=n, n_frames=[t], dimension=dim,
                     replica_particles=[n])


def pool_msd(results: list[MSDResult]) -> MSDResult:
    """Pool MSDs of independent replicas (same species and frame spacing).

    The pooled MSD is the count-weighted mean over lags common to all replicas;
    per-particle samples are kept at the lags of the shortest replica. Replicas are
    independent, so the collective MSDs are pooled the same way.
    """
    if not results:
        raise AnalysisError("no MSD results to pool", field="results", value=0)
    if len(results) == 1:
        return results[0]
    dt = results[0].dt_fs
    for r in results:
        if not np.isclose(r.dt_fs, dt, rtol=1e-6):
            raise AnalysisError("replicas have different frame spacings", field="dt_fs",
                                value=[q.dt_fs for q in results], allowed="equal spacing")
        if r.species != results[0].species:
            raise AnalysisError("replicas are of different species", field="species",
                                value=[q.species for q in results])
    ref = min(results, key=lambda r: len(r.msd_A2))
    L = len(ref.msd_A2)
    lags = ref.sample_lag
    counts = sum(r.counts[:L] for r in results)
    msd = sum(r.msd_A2[:L] * r.counts[:L] for r in results) / np.maximum(counts, 1)
    pp = []
    nn = np.zeros(len(lags))
    m2 = np.zeros(len(lags))
    m4 = np.zeros(len(lags))
    for r in results:
        pos = np.clip(np.searchsorted(r.sample_lag, lags), 0, len(r.sample_lag) - 1)
        if not np.array_equal(r.sample_lag[pos], lags):
            raise AnalysisError("replica lags do not match; use equal n_sample_lags",
                                field="n_sample_lags", value=len(r.sample_lag))
        pp.append(r.per_particle_A2[:, pos])
        w = r.n_independent[pos]
        mu = r.mean_sq_A2[pos]
        nn += w
        m2 += w * mu
        m4 += (w - 1) * r.var_sq_A4[pos] + w * mu**2
    mean2 = m2 / nn
    var = (m4 - nn * mean2**2) / np.maximum(nn - 1, 1)
    dim = results[0].dimension
    ngp = dim * (m4 / nn) / ((dim + 2) * mean2**2) - 1.0
    cmsd = ccounts = None
    if all(r.charge_msd_A2 is not None for r in results):
        ccounts = sum(r.charge_counts[:L] for r in results)
        cmsd = sum(r.charge_msd_A2[:L] * r.charge_counts[:L] for r in results) / ccounts
    return MSDResult(species=ref.species, dt_fs=dt, lag_time_fs=np.arange(L) * dt, msd_A2=msd,
                     counts=counts, sample_lag=lags, per_particle_A2=np.concatenate(pp, axis=0),
                     var_sq_A4=var, n_independent=nn, mean_sq_A2=mean2, ngp=ngp,
                     charge_msd_A2=cmsd, charge_counts=ccounts, n_particles=sum(r.n_particles for r in results),
                     n_frames=[f for r in results for f in r.n_frames], dimension=dim,
                     replica_particles=[p for r in results for p in r.replica_particles])



def msd_from_table(t_fs: np.ndarray, msd_A2: np.ndarray, *, msd_err_A2: np.ndarray | None = None,
                   n_ions: int | None = None, total_fs: float | None = None,
                   species: str = "X", dimension: int = 3) -> MSDResult:
    """An :class:`MSDResult` from a table of the mean MSD (no trajectory available).

    Parameters
    ----------
    t_fs : (K,) lag times in fs (a lag 0 row is dropped); all lags must be integer
        multiples of one frame spacing, taken as the smallest spacing.
    msd_A2 : (K,) mean MSD in Å² (sum over the ``dimension`` axes).
    msd_err_A2 : (K,) one-sigma standard errors of the MSD points, if known.
    n_ions : number of ions averaged (needed when ``msd_err_A2`` is not given).
    total_fs : length of the trajectory the table came from; default the last lag plus
        one frame spacing (a shorter length than the real one gives larger errors).
    dimension : number of axes summed in the MSD.

    Without per-particle data the error of D comes from the covariance model of
    :mod:`.diffusion` alone (see there): Gaussian increments (kappa = 0) with
    ``n_ions`` independent ions, or, with ``msd_err_A2``, the model's correlation
    between lags scaled to the given errors. It is a lower-information estimate: the
    non-Gaussian (hopping) part and the ion-to-ion spread cannot be measured from a
    table, which is why the diffusion estimator also scales it by sqrt(chi2_red) when
    the points scatter more than the model allows.

    Raises
    ------
    AnalysisError : unsorted or non-positive lags, lags that are not multiples of one
        spacing, non-finite or negative MSD, neither n_ions nor msd_err_A2 given.
    """
    t = np.asarray(t_fs, dtype=float).ravel()
    y = np.asarray(msd_A2, dtype=float).ravel()
    e = None if msd_err_A2 is None else np.asarray(msd_err_A2, dtype=float).ravel()
    if len(t) != len(y) or (e is not None and len(e) != len(y)):
        raise AnalysisError("t_ps, msd_A2 (and msd_err_A2) must have the same length",
                            field="msd_A2", value=(len(t), len(y), None if e is None else len(e)))
    keep = t > 0
    t, y = t[keep], y[keep]
    e = e[keep] if e is not None else None
    if len(t) < 4:
        raise AnalysisError("too few MSD points", field="t_ps", value=len(t),
                            allowed=">= 4 rows with t_ps > 0")
    if np.any(~np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise AnalysisError("lag times must be finite and strictly increasing", field="t_ps",
                            value=t[:5].tolist(), hint="sort the table by t_ps")
    if np.any(~np.isfinite(y)) or np.any(y < 0):
        raise AnalysisError("MSD values must be finite and >= 0", field="msd_A2",
                            value=y[~np.isfinite(y) | (y < 0)][:3].tolist())
    if e is not None and (np.any(~np.isfinite(e)) or np.any(e <= 0)):
        raise AnalysisError("MSD errors must be finite and > 0", field="msd_err_A2",
                            value=e[~np.isfinite(e) | (e <= 0)][:3].tolist(),
                            hint="drop the column to use the model error")
    dt = float(min(t[0], np.min(np.diff(t))))
    lags = np.round(t / dt).astype(np.int64)
    if np.any(np.abs(lags * dt - t) > 1e-3 * dt) or np.any(np.diff(lags) <= 0):
        raise AnalysisError("lag times are not multiples of one frame spacing", field="t_ps",
                            value=t[:5].tolist(), allowed=f"multiples of {dt:g} fs",
                            hint="give the MSD on the trajectory's own frame spacing")
    n_total = int(lags[-1]) + 1
    if total_fs is not None:
        n_total = int(round(float(total_fs) / dt)) + 1
        if n_total <= lags[-1]:
            raise AnalysisError("total length shorter than the last lag", field="total_ps",
                                value=total_fs / 1000.0, allowed=f">= {t[-1] / 1000.0:g} ps")
    if n_ions is None and e is None:
        raise AnalysisError("an MSD table needs n_ions or msd_err_A2 to estimate the error",
                            field="n_ions", value=None,
                            hint="add an n_ions column (ions averaged) or msd_err_A2")
    n = int(n_ions) if n_ions is not None else 1
    if n < 1:
        raise AnalysisError("n_ions must be >= 1", field="n_ions", value=n_ions)
    full_t = np.arange(n_total) * dt
    full = np.interp(full_t, np.concatenate([[0.0], t]), np.concatenate([[0.0], y]))
    nind = n * np.floor((n_total - 1) / lags).astype(float)
    return MSDResult(species=species, dt_fs=dt, lag_time_fs=full_t, msd_A2=full,
                     counts=np.zeros(n_total), sample_lag=lags, per_particle_A2=y[None, :].copy(),
                     var_sq_A4=(2.0 / dimension) * y**2, n_independent=nind, mean_sq_A2=y.copy(),
                     ngp=np.full(len(y), np.nan), charge_msd_A2=None, charge_counts=None,
                     n_particles=n, n_frames=[n_total], dimension=dimension,
                     replica_particles=[n], point_err_A2=e, source="msd-table",
                     n_particles_known=n_ions is not None)
