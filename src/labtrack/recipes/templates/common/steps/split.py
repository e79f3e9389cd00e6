"""Split: train, validation and test sets, reproducibly."""

from sklearn.model_selection import train_test_split


def run(ctx):
    s = ctx.settings
    data = ctx.inputs["data"]
    target = ctx.config.get("target_col", "target")
    stratify = data[target] if ctx.config.get("recipe") == "classification" else None
    rest, test = train_test_split(data, test_size=s.get("test_size", 0.2), random_state=s.get("seed", 42),
                                  stratify=stratify)
    val_share = s.get("validation_size", 0.2) / (1 - s.get("test_size", 0.2))
    stratify = rest[target] if ctx.config.get("recipe") == "classification" else None
    train, validation = train_test_split(rest, test_size=val_share, random_state=s.get("seed", 42),
                                         stratify=stratify)
    ctx.card.add_table("Sizes", [{"set": n, "rows": len(d)} for n, d in
                                 (("train", train), ("validation", validation), ("test", test))])
    return {"train": train, "validation": validation, "test": test}
