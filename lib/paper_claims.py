"""The master list of both papers' claims, transcribed from the specs (used by lib/ledger.py).

``"EPD-<n>"`` is claim n of ../shared/reference/epd_spec.md §7 and ``"COLD-<n>"`` is claim C<n> of
../shared/reference/cold_spec.md §8; each with the paper's number(s) and the notebook planned to measure it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict


@dataclass(frozen=True)
class Claim:
    id: str            # "EPD-<n>" / "COLD-<n>"
    text: str          # the claim as the spec states it
    paper_number: str  # the paper's number(s) with their metric and source ("" when the paper gives none)
    notebook: str      # the notebook planned to measure it

    @property
    def paper(self) -> str:
        return self.id.split("-")[0]


def _c(cid, text, number, notebook):
    return Claim(cid, text, number, notebook)


# Transcribed from epd_spec.md §7 (numbers: FID_inception, 128², Tables 1-6 / figures as cited in the claim).
_EPD = [
    ("EPD FID < DDPM FID on CelebA, LSUN-Church and AFHQ-Cat at 128², unconditional (Table 1).",
     "FID 26.15 vs 28.17 (CelebA), 23.17 vs 31.00 (Church), 13.06 vs 17.60 (AFHQ-Cat)", "epd_table1_unconditional"),
    ("EPD FID < BNDM FID on all three datasets of Table 1.",
     "FID 26.15 vs 26.35, 23.17 vs 29.86, 13.06 vs 14.54", "epd_table1_unconditional"),
    ("EPD FID is far below IHDM on all three datasets (Table 1).", "Table 1 (IHDM FIDs)", "epd_table1_unconditional"),
    ("The largest unconditional gain over DDPM is about 25 % (Church and Cat), and about 7 % on CelebA (Table 1).",
     "≈25 % (Church, Cat), ≈7 % (CelebA) relative FID gain", "epd_table1_unconditional"),
    ("SDEdit stroke-to-image FID ordering is EPD < DDPM < BNDM on all three datasets at hijack 0.55T (Fig. 4 table).",
     "FID ordering EPD < DDPM < BNDM (Fig. 4 table)", "epd_sdedit_strokes"),
    ("EPD's SDEdit FID gain over DDPM is about 15–23 %.",
     "FID 39.08 vs 45.80, 56.14 vs 72.54, 23.50 vs 27.61", "epd_sdedit_strokes"),
    ("On SDEdit precision, EPD ≥ DDPM on all three datasets (Table 4).", "precision, Table 4", "epd_sdedit_strokes"),
    ("On SDEdit recall, EPD > DDPM on AFHQ-Cat and < DDPM on CelebA and Church (Table 4).",
     "recall 0.80 vs 0.66 (Cat), 0.46 vs 0.53 (CelebA), 0.46 vs 0.50 (Church)", "epd_sdedit_strokes"),
    ("Unconditional precision/recall of EPD is within 0.02 of DDPM on AFHQ-Cat and CelebA; on Church, precision is "
     "higher and recall lower (Table 5).", "Church precision 0.65 vs 0.47, recall 0.33 vs 0.38; others ±0.02",
     "epd_table1_unconditional"),
    ("SDEdit CLIP score: EPD > DDPM on all three datasets (Table 6).", "CLIP margins 0.19, 0.13, 1.75",
     "epd_sdedit_strokes"),
    ("Latent space: EPD FID > DDPM and > BNDM on CelebA 256² (Table 2).", "FID 13.89 vs 7.87 (DDPM), 10.93 (BNDM)",
     "epd_table2_latent"),
    ("Latent space: EPD FID < DDPM but > BNDM on AFHQ-Cat 512² (Table 2).",
     "FID 18.91 vs 22.86 (DDPM), 13.62 (BNDM)", "epd_table2_latent"),
    ("EPD training overhead vs DDPM is about 1 % per iteration (Table 3).", "1.12 vs 1.11 s/it", "epd_table3_cost"),
    ("EPD inference is about 9 % slower than DDPM with equal memory (Table 3).",
     "301.5 vs 277.5 per batch of 64; 9.16 GB both", "epd_table3_cost"),
    ("In the first 10k iterations, EPD reaches lower FID than DDPM on low-to-mid-frequency (blurred) AFHQ-Cat "
     "variants (App. B).", "App. B curves (FID)", "epd_frequency_bands"),
    ("EPD's x̂0 predictions show fine structure earlier in the reverse process than DDPM's (Fig. 2; qualitative).",
     "qualitative (Fig. 2)", "epd_forward_process"),
    ("Linear τ beats cosine and sigmoid τ in FID; cosine ≈ sigmoid (Sec. 5.1).", "Sec. 5.1 (FID)",
     "epd_ablation_transition_fn"),
    ("t_Φ = 0.5 beats 0.25 and 0.75 in FID (Fig. 7).", "LSUN-Church FID 35.71 vs 39.31 and 86.41",
     "epd_ablation_transition_point"),
    ("Time-varying linear λ(t) beats every constant λ; low constant λ gives flat samples and high λ ≈ DDPM "
     "(Sec. 5.1).", "Sec. 5.1 (FID; qualitative)", "epd_ablation_lambda"),
    ("Linear λ(t) beats sigmoid λ(t) (Sec. 4.2).", "no numbers in the paper", "epd_ablation_lambda"),
    ("On Human-Sketch, EPD samples look better than the baselines while FID is unreliable there (App. F; "
     "qualitative).", "qualitative (App. F)", "epd_sketches"),
    ("With τ ≡ 1, EPD reduces exactly to an isotropic DDPM process (Sec. 4.1; analytic, see U1).",
     "analytic (exact)", "tests/test_edge_preserving.py (U1)"),
]

# Transcribed from cold_spec.md §8; numbers from cold_spec.md §6.2 (arXiv v1 via a third-party card, unverified).
_COLD = [
    ("Algorithm 2 restores better than Algorithm 1 for blur: Algorithm 1 gives blurry or smooth outputs with a worse "
     "FID.", "qualitative; no FID found", "cold_algorithm1_vs_2"),
    ("With an exact restoration operator, both algorithms recover x0 exactly.", "analytic (exact)",
     "cold_algorithm1_vs_2"),
    ("For any D of the form x + s·e, Algorithm 2 returns D(x0, s−1) at each step whatever R is.", "analytic (exact)",
     "cold_algorithm1_vs_2"),
    ("For every degradation and dataset in Tables 1–4, FID(Sampled) < FID(Degraded), and SSIM and RMSE improve over "
     "Degraded.", "Degraded columns not found", "cold_restoration"),
    ("Deblurring: iterative sampling gives a lower FID than direct one-shot reconstruction on MNIST, CIFAR-10 and "
     "CelebA.", "FID sampled vs direct 4.69 vs 5.10 (MNIST), 80.08 vs 83.69 (CIFAR-10), 26.14 vs 36.37 (CelebA)",
     "cold_restoration"),
    ("Direct reconstruction has equal or better RMSE and SSIM than sampling (perception–distortion trade-off).",
     "SSIM/RMSE not found", "cold_restoration"),
    ("The sampling process restores high frequencies removed by the degradation; direct predictions are smoother.",
     "qualitative", "cold_restoration"),
    ("Inpainting restores plausibly with random mask locations on MNIST/CIFAR-10 and centred masks on CelebA "
     "(Table 2).", "FID sampled 1.61 / 8.92 / 5.73 (direct 2.24 / 9.97 / 7.74)", "cold_restoration"),
    ("Super-resolution from 4×4 (MNIST, CIFAR-10) and from the final CelebA resolution gives plausible images, even "
     "though direct and sampled FIDs stay high on CIFAR-10 (Table 3).", "Table 3 not found", "cold_restoration"),
    ("Snow removal works although snow has no scale-space or compositional structure; light snow on CIFAR-10 is "
     "reconstructed almost perfectly.", "Table 4 not found", "cold_restoration"),
    ("Desaturation can be inverted (colourisation) with T = 20.", "SSIM 0.942 (CIFAR-10, unverified leaderboard)",
     "cold_restoration"),
    ("Blur generation: a GMM on channel means, followed by Algorithm 2, generates recognisable CelebA faces and AFHQ "
     "animals with no noise during training.", "FID 49.45 (CelebA 128), 54.68 (AFHQ 128)", "cold_generation_blur"),
    ("Perfect symmetry (no added noise) gives low-quality samples with low diversity; adding N(0, 0.002²) per pixel "
     "improves FID (Table 5).", "broken symmetry FID 49.45 / 54.68; perfect-symmetry row not found",
     "cold_generation_blur"),
    ("The deterministic-noise generator works with both fixed and estimated noise; estimated noise (≡ DDIM) gives "
     "the better FID.", "estimated noise FID 23.11 (CelebA), 20.59 (AFHQ); fixed-noise row not found",
     "cold_generation_noise"),
    ("Animorphosis, inpainting-to-constant and super-resolution-to-2×2 degradations also yield unconditional "
     "generators on CelebA.", "qualitative", "cold_generation_other"),
    ("Generated samples are not copies of training images (the paper shows nearest neighbours).",
     "qualitative (nearest neighbours)", "cold_generation_blur"),
]

CLAIMS: tuple = tuple([_c(f"EPD-{i}", *row) for i, row in enumerate(_EPD, 1)]
                      + [_c(f"COLD-{i}", *row) for i, row in enumerate(_COLD, 1)])
CLAIMS_BY_ID: Dict[str, Claim] = {c.id: c for c in CLAIMS}
