"""What a run is: recipes, the method contract and the registry of methods."""
