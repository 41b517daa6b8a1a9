"""Package marker: pretrained and backbone networks and their strict weight loaders."""
