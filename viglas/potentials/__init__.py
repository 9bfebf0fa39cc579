"""The classical ionic potential (Buckingham + DSF Coulomb) and its fitting."""
