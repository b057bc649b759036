"""The SMPP connector process: claims SMPP routes' attempts from the database and sends them over long-lived
sessions (service.py), with a local journal for what went on the wire (journal.py) and the database side of
claims and sweeps (claims.py). docs/carriers.md describes the design and its failure analysis."""
