from matui.cli import main

main()
