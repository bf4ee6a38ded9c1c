"""Budget sweep for the EPD digit study (issue 17): train one arm on the embedded digits and measure FD_mnistclf,
precision and recall (k=3, n=512) every EVERY steps, to find the budget at which an arm passes the quality gate.

    python scripts/budget_sweep.py ARM RES T TOTAL EVERY [EMA] [lite|full] [clip]   # ARM: ddpm | edge_preserving
                                                                                     # | epd_iso | ihdm | bndm
``clip`` (DDPM only) also samples each checkpoint with x̂0 clipped to [-1, 1] (``clip_x0=True``; the EPD repo's
DDPM does not clip), a sampling-only switch: same trained weights, one more JSON line per checkpoint.
Prints one JSON line per evaluation. One seed, one thread; a measurement for choosing budgets, not a verdict."""
import dataclasses
import json
import sys
import time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
import torch
torch.set_num_threads(1)
from lib import data, metrics, schedules
from lib.studies import study
from lib.studies.frequency import budget_profile
from lib.train import train
from lib.unet import UNet

arm = sys.argv[1]; res = int(sys.argv[2]); T = int(sys.argv[3]); total = int(sys.argv[4]); every = int(sys.argv[5])
ema = float(sys.argv[6]) if len(sys.argv) > 6 else 0.999
lite = (sys.argv[7] != "full") if len(sys.argv) > 7 else True
clip_too = len(sys.argv) > 8 and sys.argv[8] == "clip"
prof = budget_profile("quick", train_steps=total, T=T, n_eval=512, lite_unet=lite)
prof = dataclasses.replace(prof, ema_decay=ema)
ds = data.load_dataset("mnist", resolution=res)
x = ds.float()
real = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:512]]
over = {"ddpm": schedules.matched_betas(T), "edge_preserving": schedules.matched_betas(T),
        "epd_iso": {**schedules.matched_betas(T), "tau": "one"}, "ihdm": {"K": T}, "bndm": {"S": T}}[arm]
name = "edge_preserving" if arm == "epd_iso" else arm
proc = study.process_for_profile(name, prof, **over)
ext = metrics.get_extractor("mnistclf")
torch.manual_seed(0)
net = UNet(prof.unet(1, proc.out_channels(1)))
cfg = study.train_config(name, prof, 0, data=ds)
rd = f"cache/budget_sweep/run_{arm}_{res}_{T}_{total}_{ema}_{lite}"
print(arm, res, T, total, "params", sum(p.numel() for p in net.parameters()), flush=True)
done = 0
while done < total:
    t0 = time.time()
    r = train(proc, net, ds, cfg, run_dir=rd, device="cpu", stop_after=every, progress=False)
    tt = time.time() - t0
    done = r.step
    proc.fit_prior(x)
    prior = study.prior_images(x, 512, 1000)
    samplers = {"noclip": proc, **({"clip": type(proc)(proc.config, clip_x0=True)} if clip_too else {})}
    for label, p in samplers.items():
        t0 = time.time()
        fake = study.sample_model(p, r.ema, 512, x.shape[1:], 0, prof, "cpu", prior_data=prior, progress=False)
        ts = time.time() - t0
        m = metrics.evaluate_samples(fake, real, ext, ref_key=f"sweep-{res}")
        print(json.dumps({"arm": arm, "step": done, "sampler": label, "fd": round(m["FD_mnistclf"], 2),
                          "P": round(m["precision"], 3), "R": round(m["recall"], 3), "train_s": round(tt, 1),
                          "sample_s": round(ts, 1)}), flush=True)
