"""PyTorch's side of `likeness bench --pytorch PYTHON`: the same network, batch and image size
as Likeness' benchmark, timed the same way, so the two rates are measured in one run.

`likeness bench` runs this file (built into the binary) with the interpreter it is given and
one argument, a JSON object of the settings; it prints one JSON object with the rates.
Needs torch, and for each backbone its upstream definition:
  efficientnet-lite0: `efficientnet-lite-pytorch==0.1.0` (the network the shipped weights are for)
  resnet18:           `torchvision`
Weights are random: they do not change the arithmetic a step does.
"""

import json
import sys
import time


def main():
    settings = json.loads(sys.argv[1])
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as error:
        sys.exit(f"this Python has no torch ({error}); give one that has torch and the network's package")

    torch.set_num_threads(settings["threads"])
    torch.manual_seed(0)
    size, batch, embed_batch = settings["image_size"], settings["batch"], settings["embed_batch"]
    dim, classes = settings["embedding_dim"], settings["classes"]
    memory_format = torch.channels_last if settings["channels_last"] else torch.contiguous_format

    if settings["backbone"] == "efficientnet-lite0":
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            sys.exit("this Python lacks efficientnet-lite-pytorch: pip install efficientnet-lite-pytorch==0.1.0")
        body = EfficientNet.from_name("efficientnet-lite0", num_classes=dim)
        features = body._fc.in_features

        def pooled(x):
            return body.extract_features(x).mean((2, 3))
    elif settings["backbone"] == "resnet18":
        try:
            import torchvision
        except ImportError:
            sys.exit("this Python lacks torchvision: pip install torchvision")
        body = torchvision.models.resnet18()
        features = body.fc.in_features
        body.fc = torch.nn.Identity()

        def pooled(x):
            return body(x)
    else:
        sys.exit(f"unknown backbone {settings['backbone']}")

    projection = torch.nn.Linear(features, dim)
    model = torch.nn.ModuleDict({"body": body, "projection": projection}).to(memory_format=memory_format)

    def embed(x):
        e = projection(pooled(x))
        return F.normalize(e, dim=1) if settings["normalize"] else e

    proxies = torch.nn.Parameter(torch.randn(classes, dim))
    optimizer = torch.optim.AdamW(
        list(model.parameters()) + [proxies], lr=settings["lr"], weight_decay=settings["weight_decay"]
    )
    triplets = settings["loss"] == "triplet"
    images_per_step = batch * 3 if triplets else batch
    images = torch.randn(images_per_step, 3, size, size).contiguous(memory_format=memory_format)
    labels = torch.arange(images_per_step) % classes

    def step():
        if triplets:
            a, p, n = (embed(images[i * batch:(i + 1) * batch]) for i in range(3))
            loss = F.triplet_margin_loss(a, p, n, margin=settings["margin"], p=2)
        else:
            logits = F.normalize(embed(images), dim=1) @ F.normalize(proxies, dim=1).t() / settings["temperature"]
            loss = F.cross_entropy(logits, labels, label_smoothing=settings["label_smoothing"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    model.train()
    step()  # warm-up, as Likeness' pure step
    clock = time.perf_counter()
    for _ in range(settings["steps"]):
        step()
    step_s = time.perf_counter() - clock

    model.eval()
    embed_size = settings["embed_size"]
    forward_batch = torch.randn(embed_batch, 3, embed_size, embed_size).contiguous(memory_format=memory_format)
    rounds = settings["forward_rounds"]
    with torch.no_grad():
        embed(forward_batch)  # warm-up
        clock = time.perf_counter()
        for _ in range(rounds):
            embed(forward_batch)
        forward_s = time.perf_counter() - clock

    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "step_anchors_per_s": settings["steps"] * batch / step_s,
        "forward_images_per_s": rounds * embed_batch / forward_s,
    }))


if __name__ == "__main__":
    main()
