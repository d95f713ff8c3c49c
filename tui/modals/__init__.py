"""Modal screens, each a generic ``ModalScreen[T]`` whose result is the operator's answer."""
