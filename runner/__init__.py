"""runner: send each prompt to the right model by task profile; time, price and log every call."""

__version__ = "0.1.0"
