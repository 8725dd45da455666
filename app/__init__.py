"""hello-python: the sample FastAPI service that the pipeline builds and deploys."""
