"""Structure-aware diffusion reproduction library (EPD, DDPM, IHDM, BNDM, Cold Diffusion)."""
