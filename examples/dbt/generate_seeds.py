"""Write the example's seeds: houses (training rows) and new_houses (rows to score).

Deterministic (a fixed seed of Python's own generator), so the CSVs can be regenerated exactly:
    python3 examples/dbt/generate_seeds.py
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

SEEDS = Path(__file__).parent / "seeds"
CITY_PREMIUM = {"north": 40000, "south": 0, "east": 15000, "west": 25000}


def houses(first_id: int, count: int, rng: random.Random) -> list[dict[str, object]]:
    rows = []
    for key in range(first_id, first_id + count):
        size = round(rng.uniform(35, 180), 1)
        rooms = max(1, int(size // 30) + rng.randint(0, 1))
        age = rng.randint(0, 60)
        city = rng.choice(sorted(CITY_PREMIUM))
        price = 1800 * size + 9000 * rooms - 700 * age + CITY_PREMIUM[city]
        price = int(round(price + rng.gauss(0, 15000), -2))
        rows.append(
            {
                "id": key,
                "size": size,
                "rooms": rooms,
                "age": age,
                "city": city,
                "price": price,
                "segment": "premium" if price > 250000 else "budget",
            }
        )
    return rows


def write(name: str, rows: list[dict[str, object]], columns: list[str]) -> None:
    with open(SEEDS / f"{name}.csv", "w", newline="") as out:
        writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    rng = random.Random(15)
    columns = ["id", "size", "rooms", "age", "city"]
    write("houses", houses(1, 2000, rng), [*columns, "price", "segment"])
    write("new_houses", houses(2001, 600, rng), columns)


if __name__ == "__main__":
    main()
